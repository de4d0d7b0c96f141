package fhir

import (
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// glucose is the demo lab's glucose as normalise writes it after the
// LOINC and UCUM maps: the standard coding first, the lab's own after.
func glucose() *avro.Observation {
	return &avro.Observation{
		SetID: "1", ValueType: "NM", Code: "2345-7", Text: "Glucose [Mass/volume] in Serum or Plasma", CodingSystem: "LN",
		AltCode: "GLU", AltText: "Glucose", AltCodingSystem: "L",
		Value: "6.1", Units: "mmol/L", UnitsText: "mmol/L", UnitsSystem: "UCUM",
		ReferenceRange: "3.9-5.5", AbnormalFlags: "H", Status: "F", ObservedAt: "20240308140000",
	}
}

// The demo's glucose as FHIR JSON, against testdata/observation.json (go
// test -update rewrites it), and read back by google/fhir.
func TestObservationGolden(t *testing.T) {
	o, err := Observation(glucose(), Refs{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "observation.json", o)
}

// OBX-2, OBX-11 and OBX-14 row by row; an OBX-14 that is not an HL7 time
// is an error at Observation.effectiveDateTime from OBX-14.
func TestObservationFields(t *testing.T) {
	tests := []struct {
		name string
		edit func(o *avro.Observation)
		want string // a fragment of the JSON
		err  string
	}{
		{"a number is a Quantity in UCUM", func(*avro.Observation) {}, `"valueQuantity":{"code":"mmol/L","system":"http://unitsofmeasure.org","unit":"mmol/L","value":6.1}`, ""},
		{"a number that is not one stays as sent", func(o *avro.Observation) { o.Value = "<0.5" }, `"valueString":"<0.5"`, ""},
		{"text is a string", func(o *avro.Observation) { o.ValueType, o.Value = "ST", "see report" }, `"valueString":"see report"`, ""},
		{"preliminary", func(o *avro.Observation) { o.Status = "P" }, `"status":"preliminary"`, ""},
		{"corrected", func(o *avro.Observation) { o.Status = "C" }, `"status":"corrected"`, ""},
		{"no status is unknown (status is required)", func(o *avro.Observation) { o.Status = "" }, `"status":"unknown"`, ""},
		{"a local code alone has no system", func(o *avro.Observation) {
			o.Code, o.Text, o.CodingSystem, o.AltCode, o.AltText, o.AltCodingSystem = "HDL", "HDL", "L", "", "", ""
		}, `"code":{"coding":[{"code":"HDL","display":"HDL"}],"text":"HDL"}`, ""},
		{"a day", func(o *avro.Observation) { o.ObservedAt = "20240308" }, `"effectiveDateTime":"2024-03-08"`, ""},
		{"not a time", func(o *avro.Observation) { o.ObservedAt = "yesterday" }, "", "Observation.effectiveDateTime"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := glucose()
			tc.edit(o)
			r, err := Observation(o, Refs{})
			rendered(t, r, err, tc.err, "OBX-14", tc.want)
		})
	}
}
