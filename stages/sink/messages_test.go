package sink_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages/sink"
	"github.com/careflow-health/careflow/topics"
)

// place produces v and returns where Kafka put it.
func (f *fixture) place(topic, key string, v any) analytics.Source {
	f.t.Helper()
	b, err := f.serde.Encode(v)
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := f.cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: b}).First()
	if err != nil {
		f.t.Fatal(err)
	}
	return analytics.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
}

// TestSinkWritesTheMessageSearch: from real records, the sink fills
// messages (the sender's control id, the raw record's place) and
// message_keys (the event's order numbers), and keeps careflow's words
// for a failed attempt; the console's queries find the message by each.
func TestSinkWritesTheMessageSearch(t *testing.T) {
	ch := chtest.Start(t)
	f := newFixture(t)
	ctx := context.Background()
	ingest := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	const id, key = "msg-1", "NG1^HOSP"
	// An earlier message of the same patient, so that the raw record's
	// offset is not 0.
	f.place(topics.Raw, key, &avro.RawMessage{MessageID: "msg-0", CorrelationID: "msg-0", Interface: "lab-results", ReceivedAt: ingest.Add(-time.Second)})
	raw := f.place(topics.Raw, key, &avro.RawMessage{MessageID: id, CorrelationID: id, Interface: "lab-results", Transport: "mllp",
		ReceivedAt: ingest, MessageType: "ORU", TriggerEvent: "R01", ControlID: "MSG00042", PatientKey: key})
	event := f.place(topics.Events, key, &avro.ClinicalEvent{EventID: id, CorrelationID: id, EventType: "result", MessageType: "ORU",
		TriggerEvent: "R01", Orders: []avro.Order{
			{PlacerOrderNumber: "RP1", PlacerNamespace: "TRAKCARE", FillerOrderNumber: "F9", FillerNamespace: "LAB"},
			{PlacerOrderNumber: "RP1", PlacerNamespace: "TRAKCARE"}, // the same order twice: one key
		},
		Provenance: avro.Provenance{Interface: "lab-results", MessageID: id, IngestTime: ingest}})
	f.produce(topics.Outcomes, key, &avro.DeliveryOutcome{OutcomeID: id + "/deliver/lab/attempt-1", MessageID: id, CorrelationID: id,
		Interface: "lab-results", Destination: "lab", Stage: topics.StageDeliver, Status: avro.StatusRetrying, Attempt: 1,
		ErrorCode: "mllp.timeout", ErrorText: "destination lab, attempt 1: no ACK within 30s", IngestTime: ingest, At: time.Now().UTC().Add(time.Second)}) // after normalise's record time
	f.startSink(t, ch.DSN("careflow"), "careflow-sink", nil)

	store := openStore(t, ch.DSN("careflow"))
	await.For(t, 20*time.Second, 50*time.Millisecond, func() error { return f.caughtUp("careflow-sink") })
	if err := expectCount(store, "messages", 2); err != nil {
		t.Fatal(err)
	}
	if err := expectCount(store, "message_keys", 2); err != nil {
		t.Error(err)
	}
	if raw.Offset != 1 {
		t.Fatalf("raw record at offset %d; want 1, after msg-0", raw.Offset)
	}
	m, err := store.Message(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := analytics.Message{MessageID: id, CorrelationID: id, Interface: "lab-results", Transport: "mllp", ControlID: "MSG00042",
		MessageType: "ORU", TriggerEvent: "R01", PatientHash: sink.PatientHash([]byte(key)), OrderNumbers: []string{"F9^LAB", "RP1^TRAKCARE"},
		IngestTime: ingest, Status: avro.StatusRetrying, Destinations: map[string]string{"lab": avro.StatusRetrying}, Raw: raw, Event: event}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Message =\n%+v\nwant\n%+v", m, want)
	}
	for _, text := range []string{"MSG00042", "RP1", "RP1^TRAKCARE", "F9^LAB"} {
		if got, err := store.Messages(ctx, analytics.MessageQuery{Text: text}); err != nil || len(got) != 1 || got[0].MessageID != id {
			t.Errorf("Messages(%q) = %+v, %v; want %s", text, got, err, id)
		}
	}
	dests, err := store.Destinations(ctx, ingest)
	if err != nil {
		t.Fatal(err)
	}
	if lab := dests["lab"]; lab.LastError != "destination lab, attempt 1: no ACK within 30s" || lab.LastErrorCode != "mllp.timeout" {
		t.Errorf("lab = %+v; want the attempt's own words and code", lab)
	}
}
