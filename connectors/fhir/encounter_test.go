package fhir

import (
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// PV1-2 by the IG's PatientClass[EncounterClass], the status by
// Event[EncounterStatus] and PatientClass[EncounterStatus], PV1-44/45
// row by row; a time that is not one is an error at its element.
func TestEncounterFields(t *testing.T) {
	tests := []struct {
		name, event     string
		edit            func(e *avro.Encounter)
		want            string // a fragment of the JSON
		errPath, errSrc string
	}{
		{"inpatient", "admit", func(*avro.Encounter) {}, `"class":{"code":"IMP","system":"http://terminology.hl7.org/CodeSystem/v3-ActCode"}`, "", ""},
		{"emergency", "admit", func(e *avro.Encounter) { e.PatientClass = "E" }, `"class":{"code":"EMER",`, "", ""},
		{"outpatient", "admit", func(e *avro.Encounter) { e.PatientClass = "o" }, `"class":{"code":"AMB",`, "", ""},
		{"preadmit: planned location", "update", func(e *avro.Encounter) { e.PatientClass = "P" }, `"status":"planned"`, "", ""},
		{"not applicable stays in table 0004", "admit", func(e *avro.Encounter) { e.PatientClass = "N" }, `"class":{"code":"N","system":"http://terminology.hl7.org/CodeSystem/v2-0004"}`, "", ""},
		{"outside table 0004: no system", "admit", func(e *avro.Encounter) { e.PatientClass = "Z" }, `"class":{"code":"Z"}`, "", ""},
		{"admit is in progress", "admit", func(*avro.Encounter) {}, `"status":"in-progress"`, "", ""},
		{"transfer is in progress, prior location completed", "transfer", func(e *avro.Encounter) { e.PriorPointOfCare = "WARD-B" },
			`{"location":{"display":"WARD-B"},"status":"completed"}`, "", ""},
		{"discharge is finished", "discharge", func(e *avro.Encounter) { e.DischargeTime = "20240310120000" }, `"period":{"end":"2024-03-10T12:00:00+00:00","start":"2024-03-08T09:15:00+00:00"},"resourceType":"Encounter","status":"finished"`, "", ""},
		{"register is planned, as the IG says", "register", func(e *avro.Encounter) { e.PatientClass = "O" }, `"status":"planned"`, "", ""},
		{"cancelled admit", "cancel_admit", func(*avro.Encounter) {}, `"status":"cancelled"`, "", ""},
		{"cancelled discharge reopens, without an end", "cancel_discharge", func(e *avro.Encounter) { e.DischargeTime = "20240310120000" },
			`"period":{"start":"2024-03-08T09:15:00+00:00"},"resourceType":"Encounter","status":"in-progress"`, "", ""},
		{"an update with PV1-45 is finished", "update", func(e *avro.Encounter) { e.DischargeTime = "20240310" }, `"status":"finished"`, "", ""},
		{"an update of unknown class is unknown", "update", func(e *avro.Encounter) { e.PatientClass = "U" }, `"status":"unknown"`, "", ""},
		{"visit number in the facility's system", "admit", func(*avro.Encounter) {}, `"system":"urn:careflow:authority:HOSPITAL","type":{"coding":[{"code":"VN"`, "", ""},
		{"no class", "admit", func(e *avro.Encounter) { e.PatientClass = "" }, "", "Encounter.class", "PV1-2"},
		{"admit time not a time", "admit", func(e *avro.Encounter) { e.AdmitTime = "soon" }, "", "Encounter.period.start", "PV1-44"},
		{"discharge time not a time", "discharge", func(e *avro.Encounter) { e.DischargeTime = "2024-03-10" }, "", "Encounter.period.end", "PV1-45"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := *admitEvent().Encounter
			tc.edit(&e)
			r, err := Encounter(&e, tc.event, nil, Refs{Patient: "urn:uuid:p"})
			rendered(t, r, err, tc.errPath, tc.errSrc, tc.want)
		})
	}
}
