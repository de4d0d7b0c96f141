package render

import (
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// withContacts gives ev a GP, two telecoms, next of kin and an allergy.
func withContacts(ev *avro.ClinicalEvent) *avro.ClinicalEvent {
	ev.Patient.Telecoms = []avro.Telecom{
		{Value: "01632 960001", Use: "PRN", Equipment: "PH"},
		{Value: "01632 960009", Use: "WPN", Equipment: "PH"},
		{Value: "jane@example.org", Use: "NET", Equipment: "Internet"},
	}
	ev.Patient.GP = avro.Practitioner{ID: "G1234567", FamilyName: "GPNAME", GivenName: "SAM"}
	ev.NextOfKin = []avro.NextOfKin{{FamilyName: "DOE", GivenName: "JOHN", Relationship: "SPO", RelationshipText: "Spouse", Phone: "01632 960002"}}
	ev.Allergies = []avro.Allergy{{Type: "DA", Code: "PEN", Text: "Penicillin", CodingSystem: "L", Severity: "SV", Reaction: "Rash~Wheeze",
		AltCode: "P1", AltText: "Pen", AltCodingSystem: "99LOCAL"}}
	return ev
}

// TestHL7Contacts places PD1, NK1 and AL1 where each structure has room
// for them, and leaves them out where it has none; PID-13 and PID-14 are
// written in every structure.
func TestHL7Contacts(t *testing.T) {
	tests := []struct {
		name     string
		ev       *avro.ClinicalEvent
		segments string
	}{
		{"admit", withContacts(adtEvent("A01", "admit")), "MSH EVN PID PD1 NK1 PV1 AL1"},
		{"person update", withContacts(withoutEncounter(adtEvent("A31", "person_update"))), "MSH EVN PID PD1 NK1 PV1 AL1"},
		{"transfer has no NK1 or AL1", withContacts(adtEvent("A02", "transfer")), "MSH EVN PID PD1 PV1"},
		{"merge: PD1 before MRG", withContacts(mergeEvent()), "MSH EVN PID PD1 MRG"},
		{"order: AL1 before the order", withContacts(orderEvent()), "MSH PID PD1 PV1 AL1 ORC OBR"},
		{"result: NK1, no AL1", withContacts(resultEvent()), "MSH PID PD1 NK1 ORC OBR OBX OBX ORC OBR OBX OBX"},
		{"unknown structure: none", withContacts(withTrigger(adtEvent("A99", "update"), "A99")), "MSH EVN PID PV1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.ev, "2.5.1")
			if got := segmentNames(m); got != tc.segments {
				t.Errorf("segments = %q, want %q", got, tc.segments)
			}
			want := map[string]string{
				"PID-13[1].1": "01632 960001", "PID-13[1].2": "PRN", "PID-13[1].3": "PH",
				"PID-13[2].1": "jane@example.org", "PID-13[2].2": "NET", "PID-13[2].4": "jane@example.org",
				"PID-14[1].1": "01632 960009", "PID-14[1].2": "WPN",
			}
			if _, ok := m.Segment("PD1"); ok {
				want["PD1-4.1"], want["PD1-4.2"], want["PD1-4.3"] = "G1234567", "GPNAME", "SAM"
			}
			if _, ok := m.Segment("NK1"); ok {
				want["NK1-1"], want["NK1-2.1"], want["NK1-2.2"] = "1", "DOE", "JOHN"
				want["NK1-3.1"], want["NK1-3.2"], want["NK1-5.1"] = "SPO", "Spouse", "01632 960002"
			}
			if _, ok := m.Segment("AL1"); ok {
				want["AL1-1"], want["AL1-2"], want["AL1-3.1"], want["AL1-3.2"] = "1", "DA", "PEN", "Penicillin"
				want["AL1-3.3"], want["AL1-4"], want["AL1-5[1]"], want["AL1-5[2]"] = "L", "SV", "Rash", "Wheeze"
				want["AL1-3.4"], want["AL1-3.5"], want["AL1-3.6"] = "P1", "Pen", "99LOCAL"
			}
			for loc, v := range want {
				if got := m.Get(loc); got != v {
					t.Errorf("%s = %q, want %q", loc, got, v)
				}
			}
		})
	}
}
