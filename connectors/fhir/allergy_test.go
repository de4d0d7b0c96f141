package fhir

import (
	"bytes"
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// AL1-2 by the IG's AllergenType ConceptMaps, AL1-4 as reaction severity
// or, with no reaction, criticality, and the IG's constant clinicalStatus.
func TestAllergyIntoleranceFields(t *testing.T) {
	tests := []struct {
		name string
		edit func(a *avro.Allergy)
		want string // a fragment of the JSON
		not  string
	}{
		{"drug is medication, an allergy", func(*avro.Allergy) {}, `"category":["medication"]`, ""},
		{"food", func(a *avro.Allergy) { a.Type = "FA" }, `"category":["food"]`, ""},
		{"pollen is environment", func(a *avro.Allergy) { a.Type = "LA" }, `"category":["environment"]`, ""},
		{"animal is biologic", func(a *avro.Allergy) { a.Type = "AA" }, `"category":["biologic"]`, ""},
		{"miscellaneous contraindication: no category, no type", func(a *avro.Allergy) { a.Type = "MC" }, `"resourceType":"AllergyIntolerance"}`, `"type"`},
		{"active", func(*avro.Allergy) {}, `"clinicalStatus":{"coding":[{"code":"active","system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"}]}`, "verificationStatus"},
		{"reactions carry the severity", func(*avro.Allergy) {}, `"reaction":[{"manifestation":[{"text":"Rash"},{"text":"Wheeze"}],"severity":"severe"}]`, "criticality"},
		{"moderate", func(a *avro.Allergy) { a.Severity = "MO" }, `"severity":"moderate"`, ""},
		{"no reaction: severe is high criticality", func(a *avro.Allergy) { a.Reaction = "" }, `"criticality":"high"`, `"reaction"`},
		{"no reaction: moderate has no criticality", func(a *avro.Allergy) { a.Reaction, a.Severity = "", "MO" }, `"clinicalStatus"`, "criticality"},
		{"code with the alternate", func(*avro.Allergy) {}, `{"code":"91936005","display":"Allergy to penicillin","system":"http://snomed.info/sct"},{"code":"PEN","display":"Penicillin"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := admitEvent().Allergies[0]
			tc.edit(&a)
			r, err := AllergyIntolerance(&a, Refs{Patient: "urn:uuid:p"})
			if err != nil {
				t.Fatal(err)
			}
			b, err := JSON(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(tc.want)) {
				t.Errorf("%s lacks %s", b, tc.want)
			}
			if tc.not != "" && bytes.Contains(b, []byte(tc.not)) {
				t.Errorf("%s has %s", b, tc.not)
			}
		})
	}
	a := admitEvent().Allergies[0]
	if _, err := AllergyIntolerance(&a, Refs{}); err == nil {
		t.Error("an AllergyIntolerance with no patient was accepted")
	}
}
