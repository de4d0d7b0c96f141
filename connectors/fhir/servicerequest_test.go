package fhir

import (
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// ORC-5 over ORC-1 for the status (the IG's OrderStatus and
// OrderControlCode ConceptMaps, CA and HD as docs/fhir.md says), priority,
// authoredOn for a new order only, EI systems; errors at their element.
func TestServiceRequestFields(t *testing.T) {
	tests := []struct {
		name            string
		edit            func(o *avro.Order)
		want            string // a fragment of the JSON
		errPath, errSrc string
	}{
		{"ORC-5 SC wins over ORC-1 NW: active", func(*avro.Order) {}, `"status":"active"`, "", ""},
		{"ORC-5 CM is completed", func(o *avro.Order) { o.Control = "RE"; o.Status = "CM" }, `"status":"completed"`, "", ""},
		{"ORC-5 HD is on hold", func(o *avro.Order) { o.Status = "HD" }, `"status":"on-hold"`, "", ""},
		{"ORC-5 ER is entered in error", func(o *avro.Order) { o.Status = "ER" }, `"status":"entered-in-error"`, "", ""},
		{"ORC-1 CA alone is revoked", func(o *avro.Order) { o.Control, o.Status = "CA", "" }, `"status":"revoked"`, "", ""},
		{"ORC-1 CR is revoked", func(o *avro.Order) { o.Control, o.Status = "CR", "" }, `"status":"revoked"`, "", ""},
		{"ORC-1 HD alone is on hold", func(o *avro.Order) { o.Control, o.Status = "HD", "" }, `"status":"on-hold"`, "", ""},
		{"ORC-1 RE, unmapped, is unknown", func(o *avro.Order) { o.Control, o.Status = "RE", "" }, `"status":"unknown"`, "", ""},
		{"ORC-5 unmapped falls back to ORC-1", func(o *avro.Order) { o.Control, o.Status = "DC", "A" }, `"status":"revoked"`, "", ""},
		{"intent is order", func(*avro.Order) {}, `"intent":"order"`, "", ""},
		{"stat", func(o *avro.Order) { o.Priority = "S" }, `"priority":"stat"`, "", ""},
		{"timing critical has no FHIR priority", func(o *avro.Order) { o.Priority = "T" }, `"intent":"order","requester"`, "", ""},
		{"authoredOn for a new order", func(*avro.Order) {}, `"authoredOn":"2024-03-08T10:00:00+00:00"`, "", ""},
		{"no authoredOn for a cancel", func(o *avro.Order) { o.Control = "CA" }, `{"code":`, "", ""},
		{"OBR-4 with the alternate", func(o *avro.Order) {
			o.ServiceAltCode, o.ServiceAltText, o.ServiceAltSystem = "CBC", "Full blood count", "L"
		},
			`"coding":[{"code":"58410-2","display":"CBC panel - Blood by Automated count","system":"http://loinc.org"},{"code":"CBC","display":"Full blood count"}]`, "", ""},
		{"placer in the namespace's placeholder system", func(*avro.Order) {}, `"system":"urn:careflow:authority:EHR","type":{"coding":[{"code":"PLAC"`, "", ""},
		{"an ISO universal id without a namespace", func(o *avro.Order) {
			o.PlacerNamespace, o.PlacerUniversalID, o.PlacerUniversalIDType = "", "1.2.3", "ISO"
		},
			`"system":"urn:oid:1.2.3"`, "", ""},
		{"filler typed FILL", func(o *avro.Order) { o.FillerOrderNumber, o.FillerNamespace = "F1", "LAB" }, `"system":"urn:careflow:authority:LAB","type":{"coding":[{"code":"FILL"`, "", ""},
		{"ORC-9 not a time", func(o *avro.Order) { o.OrderedAt = "08/03/2024" }, "", "ServiceRequest.authoredOn", "ORC-9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := cbcOrder()
			tc.edit(&o)
			r, err := ServiceRequest(&o, nil, Refs{Patient: "urn:uuid:p"})
			rendered(t, r, err, tc.errPath, tc.errSrc, tc.want)
		})
	}
	o := cbcOrder()
	if _, err := ServiceRequest(&o, nil, Refs{}); err == nil {
		t.Error("a ServiceRequest with no subject was accepted")
	}
}
