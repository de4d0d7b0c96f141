package avro_test

import (
	"testing"

	"github.com/careflow-health/careflow/avro"
)

func TestInvalidUTF8(t *testing.T) {
	ok := avro.ClinicalEvent{Patient: avro.Patient{FamilyName: "Lefèvre", GivenNames: []string{"Renée"}}}
	if p := avro.InvalidUTF8(&ok); p != "" {
		t.Errorf("valid event: %q", p)
	}
	bad := ok
	bad.Observations = []avro.Observation{{Value: "ok"}, {Value: "Ren\xe9e"}}
	if p := avro.InvalidUTF8(&bad); p != "observations[1].value" {
		t.Errorf("path %q, want observations[1].value", p)
	}
	raw := avro.RawMessage{Payload: []byte("\xe9")} // bytes are not text
	if p := avro.InvalidUTF8(raw); p != "" {
		t.Errorf("payload bytes reported: %q", p)
	}
}
