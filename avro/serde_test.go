package avro_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
)

// newSerde returns a Serde over a fresh file-backed registry, and the
// registry, so that tests can register other schema versions.
func newSerde(t testing.TB) (*avro.Serde, *registry.Store) {
	t.Helper()
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := avro.NewSerde(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

// fixture loads testdata/records/<name>.json into v.
func fixture(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "records", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestRoundTrip(t *testing.T) {
	var (
		raw     avro.RawMessage
		event   avro.ClinicalEvent
		outcome avro.DeliveryOutcome
		dead    avro.DeadLetter
		audit   avro.AuditEvent
		exc     avro.Exception
		trans   avro.OrderTransition
	)
	fixture(t, "RawMessage", &raw)
	fixture(t, "ClinicalEvent", &event)
	fixture(t, "DeliveryOutcome", &outcome)
	fixture(t, "DeadLetter", &dead)
	fixture(t, "AuditEvent", &audit)
	fixture(t, "Exception", &exc)
	fixture(t, "OrderTransition", &trans)
	if event.Encounter == nil || len(event.Observations) != 2 || len(dead.OriginalHeaders) != 2 {
		t.Fatal("fixtures lost data on load; the round trip below would prove little")
	}

	// Empty slices read back as nil: the wire has no nil/empty distinction.
	emptySlices := avro.ClinicalEvent{
		EventID:      "e-empty",
		Patient:      avro.Patient{Identifiers: []avro.Identifier{}, GivenNames: []string{}, Addresses: []avro.Address{}},
		Orders:       []avro.Order{},
		Observations: []avro.Observation{},
	}
	wantEmpty := avro.ClinicalEvent{EventID: "e-empty"}
	noEncounter := event
	noEncounter.Encounter = nil
	emptyEncounter := event
	emptyEncounter.Encounter = &avro.Encounter{}
	fromFHIR := event
	fromFHIR.Provenance.ResourceType, fromFHIR.Provenance.ResourceID, fromFHIR.Provenance.ResourceVersion = "Observation", "obs-1", "3"
	negativeTime := outcome
	negativeTime.At = time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC) // before the epoch
	emptyPayload := raw
	emptyPayload.Payload = []byte{}
	wantEmptyPayload := raw
	wantEmptyPayload.Payload = nil

	tests := []struct {
		name string
		in   any
		want any // nil: same as in
		into func() any
	}{
		{"RawMessage", &raw, nil, func() any { return new(avro.RawMessage) }},
		{"RawMessage zero", &avro.RawMessage{}, nil, func() any { return new(avro.RawMessage) }},
		{"RawMessage empty payload", &emptyPayload, &wantEmptyPayload, func() any { return new(avro.RawMessage) }},
		{"ClinicalEvent", &event, nil, func() any { return new(avro.ClinicalEvent) }},
		{"ClinicalEvent nil encounter", &noEncounter, nil, func() any { return new(avro.ClinicalEvent) }},
		{"ClinicalEvent empty encounter", &emptyEncounter, nil, func() any { return new(avro.ClinicalEvent) }},
		{"ClinicalEvent from a FHIR resource", &fromFHIR, nil, func() any { return new(avro.ClinicalEvent) }},
		{"ClinicalEvent empty slices", &emptySlices, &wantEmpty, func() any { return new(avro.ClinicalEvent) }},
		{"ClinicalEvent zero", &avro.ClinicalEvent{}, nil, func() any { return new(avro.ClinicalEvent) }},
		{"DeliveryOutcome", &outcome, nil, func() any { return new(avro.DeliveryOutcome) }},
		{"DeliveryOutcome before epoch", &negativeTime, nil, func() any { return new(avro.DeliveryOutcome) }},
		{"DeliveryOutcome zero", &avro.DeliveryOutcome{}, nil, func() any { return new(avro.DeliveryOutcome) }},
		{"DeadLetter", &dead, nil, func() any { return new(avro.DeadLetter) }},
		{"DeadLetter zero", &avro.DeadLetter{}, nil, func() any { return new(avro.DeadLetter) }},
		{"AuditEvent", &audit, nil, func() any { return new(avro.AuditEvent) }},
		// count's default is 1: a record always stands for at least one
		// occurrence.
		{"AuditEvent zero", &avro.AuditEvent{}, &avro.AuditEvent{Count: 1}, func() any { return new(avro.AuditEvent) }},
		{"Exception", &exc, nil, func() any { return new(avro.Exception) }},
		{"Exception zero", &avro.Exception{}, nil, func() any { return new(avro.Exception) }},
		{"OrderTransition", &trans, nil, func() any { return new(avro.OrderTransition) }},
		{"OrderTransition zero", &avro.OrderTransition{}, nil, func() any { return new(avro.OrderTransition) }},
	}
	s, _ := newSerde(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Encode(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != 0 || int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4]) != s.SchemaID(tt.in) || s.SchemaID(tt.in) == 0 {
				t.Fatalf("header % x does not carry schema id %d", b[:5], s.SchemaID(tt.in))
			}
			got := tt.into()
			if err := s.Decode(b, got); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == nil {
				want = tt.in
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("round trip changed the record\n got: %s\nwant: %s", g, w)
			}
		})
	}
}

// TestDecodeDoesNotAliasInput guards the copy in bytesOf: a Kafka client may
// reuse the buffer a record arrived in.
func TestDecodeDoesNotAliasInput(t *testing.T) {
	s, _ := newSerde(t)
	b, err := s.Encode(&avro.RawMessage{Payload: []byte("MSH|^~\\&|")})
	if err != nil {
		t.Fatal(err)
	}
	var got avro.RawMessage
	if err := s.Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	clear(b)
	if string(got.Payload) != "MSH|^~\\&|" {
		t.Fatalf("payload changed with the input buffer: %q", got.Payload)
	}
}

func TestSchemaIDs(t *testing.T) {
	s, reg := newSerde(t)
	ids := map[int]string{}
	for _, v := range []any{&avro.RawMessage{}, &avro.ClinicalEvent{}, &avro.DeliveryOutcome{}, &avro.DeadLetter{}, &avro.AuditEvent{}} {
		id := s.SchemaID(v)
		if id == 0 || ids[id] != "" {
			t.Fatalf("%T: schema id %d is zero or shared with %s", v, id, ids[id])
		}
		ids[id] = reflect.TypeOf(v).Elem().Name()
	}
	if id := s.SchemaID(&struct{}{}); id != 0 {
		t.Errorf("SchemaID of an unknown type = %d, want 0", id)
	}
	// A second serde on the same registry gets the same ids: registration
	// is idempotent, so restarts and replicas agree.
	s2, err := avro.NewSerde(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	for id, name := range ids {
		var v any
		switch name {
		case "RawMessage":
			v = &avro.RawMessage{}
		case "ClinicalEvent":
			v = &avro.ClinicalEvent{}
		case "DeliveryOutcome":
			v = &avro.DeliveryOutcome{}
		case "DeadLetter":
			v = &avro.DeadLetter{}
		case "AuditEvent":
			v = &avro.AuditEvent{}
		}
		if got := s2.SchemaID(v); got != id {
			t.Errorf("%s: second serde has id %d, first had %d", name, got, id)
		}
	}
}

func TestBadInput(t *testing.T) {
	s, _ := newSerde(t)
	event, err := s.Encode(&avro.ClinicalEvent{EventID: "e1", Patient: avro.Patient{FamilyName: "TESTPATIENT"}})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := s.Encode(&avro.DeadLetter{Stage: "route"})
	if err != nil {
		t.Fatal(err)
	}
	var unknownID *avro.UnknownSchemaError
	var wrongType *avro.WrongTypeError
	tests := []struct {
		name  string
		in    []byte
		into  any
		check func(error) bool
	}{
		{"nil", nil, new(avro.ClinicalEvent), func(err error) bool { return errors.Is(err, avro.ErrNotAvro) }},
		{"short", []byte{0, 0, 0}, new(avro.ClinicalEvent), func(err error) bool { return errors.Is(err, avro.ErrNotAvro) }},
		{"no magic byte", []byte(`{"event_id":"e1"}`), new(avro.ClinicalEvent), func(err error) bool { return errors.Is(err, avro.ErrNotAvro) }},
		{"unknown id", []byte{0, 0, 0, 0x30, 0x39, 2, 'x'}, new(avro.ClinicalEvent), func(err error) bool {
			return errors.As(err, &unknownID) && unknownID.ID == 12345
		}},
		{"wrong type", dead, new(avro.ClinicalEvent), func(err error) bool {
			return errors.As(err, &wrongType) && wrongType.Got == avro.NameDeadLetter && wrongType.Want == avro.NameClinicalEvent
		}},
		{"truncated", event[:len(event)-3], new(avro.ClinicalEvent), func(err error) bool { return errors.Is(err, avro.ErrMalformed) }},
		{"header only", event[:5], new(avro.ClinicalEvent), func(err error) bool { return errors.Is(err, avro.ErrMalformed) }},
		{"trailing bytes", append(append([]byte{}, event...), 1, 2), new(avro.ClinicalEvent), func(err error) bool { return errors.Is(err, avro.ErrMalformed) }},
		{"garbage body", append(append([]byte{}, event[:5]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), new(avro.ClinicalEvent), func(err error) bool {
			return errors.Is(err, avro.ErrMalformed)
		}},
		{"unsupported target", event, new(string), func(err error) bool { return errors.Is(err, avro.ErrUnsupportedType) }},
		{"nil target", event, (*avro.ClinicalEvent)(nil), func(err error) bool { return errors.Is(err, avro.ErrUnsupportedType) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Decode(tt.in, tt.into)
			if err == nil || !tt.check(err) {
				t.Fatalf("Decode error = %v (%T), not the one expected", err, err)
			}
			if strings.Contains(err.Error(), "TESTPATIENT") {
				t.Fatalf("error leaks record content: %v", err)
			}
		})
	}
	for _, v := range []any{avro.ClinicalEvent{}, (*avro.RawMessage)(nil), 42} {
		if _, err := s.Encode(v); !errors.Is(err, avro.ErrUnsupportedType) {
			t.Errorf("Encode(%T) error = %v, want ErrUnsupportedType", v, err)
		}
	}
}
