package normalise

import (
	"strings"
	"testing"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// TestMapContacts reads telecoms (PID-13, PID-14), the GP (PD1-4), next
// of kin (NK1) and allergies (AL1), and leaves out what names nothing.
func TestMapContacts(t *testing.T) {
	const head = "MSH|^~\\&|EHR|HOSP|CAREFLOW|HOSP|20240301120000||ADT^A31^ADT_A05|C1|P|2.5.1\rEVN|A31|20240301115500\r"
	tests := []struct {
		name      string
		segments  []string
		telecoms  []avro.Telecom
		gp        avro.Practitioner
		nextOfKin []avro.NextOfKin
		allergies []avro.Allergy
	}{
		{
			name:     "home and business numbers, an e-mail address",
			segments: []string{"PID|1||1^^^HOSP^MR||DOE^JANE||||||||01632 960001^PRN^PH~^NET^Internet^jane@example.org|01632 960009^^PH"},
			telecoms: []avro.Telecom{
				{Value: "01632 960001", Use: "PRN", Equipment: "PH"},
				{Value: "jane@example.org", Use: "NET", Equipment: "Internet"},
				{Value: "01632 960009", Use: "WPN", Equipment: "PH"}, // PID-14 without a use code
			},
		},
		{
			name:     "empty and null telecoms are skipped",
			segments: []string{"PID|1||1^^^HOSP^MR||DOE^JANE||||||||~\"\"|^WPN^PH"},
		},
		{
			name:     "GP",
			segments: []string{"PID|1||1^^^HOSP^MR||DOE^JANE", "PD1|||Practice^^P123|G1234567^GPNAME&&GPNAME^SAM"},
			gp:       avro.Practitioner{ID: "G1234567", FamilyName: "GPNAME", GivenName: "SAM"},
		},
		{
			name: "next of kin, a placeholder NK1 skipped",
			segments: []string{"PID|1||1^^^HOSP^MR||DOE^JANE", "NK1|1|DOE^JOHN|SPO^Spouse|1 High St|01632 960002~01632 960003", "NK1|2",
				"PV1|1|N"},
			nextOfKin: []avro.NextOfKin{{FamilyName: "DOE", GivenName: "JOHN", Relationship: "SPO", RelationshipText: "Spouse", Phone: "01632 960002"}},
		},
		{
			name:      "allergies, one without an allergen skipped",
			segments:  []string{"PID|1||1^^^HOSP^MR||DOE^JANE", "PV1|1|N", "AL1|1|DA^Drug allergy|PEN^Penicillin^L|SV|Rash~Wheeze", "AL1|2|FA"},
			allergies: []avro.Allergy{{Type: "DA", Code: "PEN", Text: "Penicillin", CodingSystem: "L", Severity: "SV", Reaction: "Rash~Wheeze"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte(head + strings.Join(tc.segments, "\r") + "\r")
			m, err := hl7v2.Parse(payload)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Map(m, rawFor(payload))
			if err != nil {
				t.Fatal(err)
			}
			same(t, "telecoms", ev.Patient.Telecoms, tc.telecoms)
			same(t, "gp", ev.Patient.GP, tc.gp)
			same(t, "next of kin", ev.NextOfKin, tc.nextOfKin)
			same(t, "allergies", ev.Allergies, tc.allergies)
		})
	}
}
