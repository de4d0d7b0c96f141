package fhir

import (
	"bytes"
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// OBR-25 by the IG's ResultStatus[Non-Queries], OBR-7, and the errors the
// IG asks for (no OBR-25, Y, Z), each at its element and OBR field.
func TestDiagnosticReportFields(t *testing.T) {
	tests := []struct {
		name            string
		edit            func(o *avro.Order)
		want            string // a fragment of the JSON
		errPath, errSrc string
	}{
		{"final", func(*avro.Order) {}, `"status":"final"`, "", ""},
		{"preliminary", func(o *avro.Order) { o.ResultStatus = "P" }, `"status":"preliminary"`, "", ""},
		{"corrected", func(o *avro.Order) { o.ResultStatus = "c" }, `"status":"corrected"`, "", ""},
		{"stored, not verified, is partial", func(o *avro.Order) { o.ResultStatus = "R" }, `"status":"partial"`, "", ""},
		{"specimen received is registered", func(o *avro.Order) { o.ResultStatus = "I" }, `"status":"registered"`, "", ""},
		{"cancelled", func(o *avro.Order) { o.ResultStatus = "X" }, `"status":"cancelled"`, "", ""},
		{"some results, unmapped by the IG, is unknown", func(o *avro.Order) { o.ResultStatus = "A" }, `"status":"unknown"`, "", ""},
		{"filler identifier first", func(*avro.Order) {}, `"identifier":[{"system":"urn:careflow:authority:LAB","type":{"coding":[{"code":"FILL"`, "", ""},
		{"OBR-7", func(*avro.Order) {}, `"effectiveDateTime":"2024-03-08T14:00:00+00:00"`, "", ""},
		{"no OBR-25", func(o *avro.Order) { o.ResultStatus = "" }, "", "DiagnosticReport.status", "OBR-25"},
		{"no order on record", func(o *avro.Order) { o.ResultStatus = "Y" }, "", "DiagnosticReport.status", "OBR-25"},
		{"no OBR-4", func(o *avro.Order) { o.ServiceCode, o.ServiceText = "", "" }, "", "DiagnosticReport.code", "OBR-4"},
		{"OBR-7 not a time", func(o *avro.Order) { o.ObservedAt = "noon" }, "", "DiagnosticReport.effectiveDateTime", "OBR-7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := resultEvent().Orders[0]
			tc.edit(&o)
			r, err := DiagnosticReport(&o, nil, Refs{Patient: "urn:uuid:p", BasedOn: "urn:uuid:sr", Results: []string{"urn:uuid:o1", "urn:uuid:o2"}})
			b := rendered(t, r, err, tc.errPath, tc.errSrc, tc.want)
			if b == nil {
				return
			}
			if !bytes.Contains(b, []byte(`"result":[{"reference":"urn:uuid:o1"},{"reference":"urn:uuid:o2"}]`)) {
				t.Errorf("%s lacks its results", b)
			}
		})
	}
}
