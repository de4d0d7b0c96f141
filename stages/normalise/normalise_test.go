package normalise

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

var testNow = time.Date(2024, 3, 1, 12, 0, 1, 0, time.UTC)

func newStage(t *testing.T) (*Stage, *avro.Serde) {
	t.Helper()
	serde, err := avro.NewSerde(context.Background(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(Config{Serde: serde, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return st, serde
}

// envelope wraps payload as validate forwards it: a RawMessage on
// careflow.valid.
func envelope(t *testing.T, serde *avro.Serde, payload []byte) stages.Envelope {
	t.Helper()
	return envelopeFor(t, serde, rawFor(payload))
}

// envelopeFor is envelope for a RawMessage the test has filled in.
func envelopeFor(t *testing.T, serde *avro.Serde, raw *avro.RawMessage) stages.Envelope {
	t.Helper()
	raw.MessageType, raw.TriggerEvent = "ADT", "A01"
	b, err := serde.Encode(raw)
	if err != nil {
		t.Fatal(err)
	}
	var h stages.Headers
	h.Set(topics.HeaderMessageID, raw.MessageID)
	h.Set(topics.HeaderCorrelationID, raw.CorrelationID)
	h.Set(topics.HeaderIdempotencyKey, raw.IdempotencyKey)
	h.Set(topics.HeaderInterface, raw.Interface)
	h.Set(topics.HeaderIngestTime, raw.ReceivedAt.Format(topics.TimeFormat))
	return stages.Envelope{Topic: topics.Valid, Key: []byte("100234^NORTHSIDE"), Value: b, Headers: h, Partition: 1, Offset: 7}
}

func TestProcessRoundTrip(t *testing.T) {
	for _, file := range []string{"adt_a01_v251.hl7", "adt_a40_v251.hl7", "orm_o01_v23.hl7", "oru_r01_v251.hl7", "adt_a28_v25.hl7"} {
		t.Run(file, func(t *testing.T) {
			st, serde := newStage(t)
			payload := load(t, file)
			in := envelope(t, serde, payload)
			out, err := st.Process(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 || out[0].Topic != topics.Events || string(out[0].Key) != string(in.Key) {
				t.Fatalf("got %d outputs, want one on %s with the input's key", len(out), topics.Events)
			}
			if got := out[0].Headers.Get(topics.StageTime(topics.StageNormalise)); got != testNow.Format(topics.TimeFormat) {
				t.Errorf("stage time header = %q", got)
			}
			if got := out[0].Headers.Get(topics.HeaderCorrelationID); got != "cor-1" {
				t.Errorf("correlation header = %q, want it kept", got)
			}
			var got avro.ClinicalEvent
			if err := serde.Decode(out[0].Value, &got); err != nil {
				t.Fatal(err)
			}
			m, err := hl7v2.Parse(payload)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Map(m, rawFor(payload))
			if err != nil {
				t.Fatal(err)
			}
			normaliseEmpty(want)
			normaliseEmpty(&got)
			if !reflect.DeepEqual(&got, want) {
				t.Errorf("event after the serde:\n got  %+v\n want %+v", got, *want)
			}
		})
	}
}

// normaliseEmpty turns nil slices into empty ones, since Avro arrays do
// not tell the two apart.
func normaliseEmpty(ev *avro.ClinicalEvent) {
	fix := func(s any) {
		v := reflect.ValueOf(s).Elem()
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
	}
	fix(&ev.Orders)
	fix(&ev.Observations)
	fix(&ev.Patient.Identifiers)
	fix(&ev.Patient.GivenNames)
	fix(&ev.Patient.Addresses)
	fix(&ev.Patient.PriorIdentifiers)
}

func TestProcessFailures(t *testing.T) {
	tests := []struct {
		name     string
		payload  []byte
		value    []byte
		code     string
		location string
	}{
		{name: "unmapped type", payload: load(t, "adt_a05_v25.hl7"), code: CodeUnmappedType, location: "MSH-9"},
		{name: "no patient", payload: load(t, "oru_r01_nopid_v231.hl7"), code: CodeNoPatient, location: "PID"},
		{name: "not HL7", payload: []byte("hello"), code: "hl7.no_msh", location: "segment 1"},
		{name: "not Avro", value: []byte{1, 2, 3}, code: CodeDecode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, serde := newStage(t)
			in := envelope(t, serde, tc.payload)
			if tc.value != nil {
				in.Value = tc.value
			}
			out, err := st.Process(context.Background(), in)
			var se *stages.Error
			if !errors.As(err, &se) || se.Kind != stages.KindPermanent || se.Code != tc.code || se.Location != tc.location {
				t.Fatalf("err = %v, want permanent %s at %s", err, tc.code, tc.location)
			}
			if len(out) != 1 || out[0].Topic != topics.Outcomes || string(out[0].Key) != string(in.Key) {
				t.Fatalf("got %d outputs, want one outcome keyed like the input", len(out))
			}
			var o avro.DeliveryOutcome
			if err := serde.Decode(out[0].Value, &o); err != nil {
				t.Fatal(err)
			}
			want := avro.DeliveryOutcome{
				OutcomeID: "msg-1/normalise/invalid", MessageID: "msg-1", CorrelationID: "cor-1", IdempotencyKey: "idem-1",
				Interface: "ehr", Stage: topics.StageNormalise, Status: avro.StatusInvalid,
				ErrorCode: tc.code, ErrorLocation: tc.location, ErrorText: se.Err.Error(),
				MessageType: "ADT", TriggerEvent: "A01", IngestTime: received, At: testNow,
			}
			if tc.value != nil { // identity from the headers; type unknown
				want.MessageType, want.TriggerEvent = "", ""
			}
			if !reflect.DeepEqual(o, want) {
				t.Errorf("outcome:\n got  %+v\n want %+v", o, want)
			}
			if strings.Contains(o.ErrorText, "Testperson") {
				t.Errorf("outcome text leaks patient data: %s", o.ErrorText)
			}
		})
	}
}

func TestUnknownSchemaIsTransient(t *testing.T) {
	st, serde := newStage(t)
	in := envelope(t, serde, load(t, "adt_a01_v251.hl7"))
	in.Value = append([]byte{0, 0, 0, 0x03, 0xe7}, in.Value[5:]...) // schema id 999
	out, err := st.Process(context.Background(), in)
	if stages.KindOf(err) != stages.KindTransient || len(out) != 0 {
		t.Fatalf("got %d outputs, %v; want a transient error and no output", len(out), err)
	}
}

func TestNewNeedsSerde(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a Serde succeeded")
	}
}

// testRegistry is careflow's own schema registry, in a temporary folder.
func testRegistry(t testing.TB) *registry.Store {
	t.Helper()
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return reg
}
