package avro_test

import (
	"strings"
	"testing"

	"github.com/careflow-health/careflow/avro"
)

func TestKeepsFields(t *testing.T) {
	raw := avro.Schemas()[avro.NameRawMessage]
	event := avro.Schemas()[avro.NameClinicalEvent]
	withExtra := strings.Replace(raw, `"fields": [`, `"fields": [{"name": "extra", "type": "string", "default": ""},`, 1)
	noPayload := strings.Replace(raw, `{"name": "payload", "type": "bytes", "default": "", "doc": "the message bytes, unmodified"},`, "", 1)
	noFamily := strings.Replace(event, `{"name": "family_name"`, `{"name": "surname"`, 1)
	if noPayload == raw || noFamily == event {
		t.Fatal("fixtures did not change the schemas; the test would prove nothing")
	}
	cases := []struct {
		name, subject, schema, missing string
	}{
		{"the embedded schema", avro.NameRawMessage, raw, ""},
		{"a field added", avro.NameRawMessage, withExtra, ""},
		{"payload dropped", avro.NameRawMessage, noPayload, "careflow.RawMessage.payload"},
		{"a nested record's field dropped", avro.NameClinicalEvent, noFamily, "careflow.Patient.family_name"},
		{"another subject", "hospital.Thing", `{"type": "record", "name": "Thing", "fields": []}`, ""},
	}
	for _, c := range cases {
		err := avro.KeepsFields(c.subject, c.schema)
		switch {
		case c.missing == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.missing != "" && (err == nil || !strings.Contains(err.Error(), c.missing)):
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.missing)
		}
	}
}
