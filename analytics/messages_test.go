package analytics_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
)

// openStore starts a ClickHouse for t and opens the current schema on it.
func openStore(t *testing.T) *analytics.Store {
	t.Helper()
	ch := chtest.Start(t)
	st, err := analytics.Open(context.Background(), ch.DSN("careflow"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// insertTwice inserts b twice, as a sink replay would: every query must
// count it once.
func insertTwice(t *testing.T, st *analytics.Store, b *analytics.Batch) {
	t.Helper()
	for range 2 {
		if err := st.Insert(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(ms []analytics.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.MessageID)
	}
	return out
}

func TestMessagesSearch(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	var b analytics.Batch
	recv := func(id, corr, iface, typ, trigger, control, hash string, at time.Time, offset int64) {
		b.Received = append(b.Received, analytics.Received{MessageID: id, CorrelationID: corr, Interface: iface, Transport: "mllp",
			ControlID: control, MessageType: typ, TriggerEvent: trigger, PatientHash: hash, IngestTime: at,
			Raw: analytics.Source{Topic: "careflow.raw", Partition: 1, Offset: offset}})
	}
	recv("m1", "m1", "ehr", "ADT", "A01", "C-1", "p1", t0, 11)
	recv("m2", "corr-2", "lab", "ORU", "R01", "C-2", "p2", t0.Add(time.Minute), 12)
	recv("m3", "m3", "ehr", "ADT", "A08", "C-1", "p1", t0.Add(2*time.Minute), 13) // the sender reused its control id
	recv("m4", "m4", "ehr", "ORM", "O01", "C-4", "p3", t0.Add(24*time.Hour), 14)  // the next day's partition
	b.MessageKeys = append(b.MessageKeys,
		analytics.MessageKey{MessageID: "m2", Kind: analytics.KeyPlacerOrder, Value: "P100^PAS", At: t0},
		analytics.MessageKey{MessageID: "m2", Kind: analytics.KeyFillerOrder, Value: "F200^LAB", At: t0},
		analytics.MessageKey{MessageID: "m4", Kind: analytics.KeyPlacerOrder, Value: "P100^PAS", At: t0})
	tr := func(id, dest, stage, status string, at time.Time, src analytics.Source) {
		b.Transitions = append(b.Transitions, analytics.Transition{RowID: id + "/" + stage + "/" + dest + "/" + status, MessageID: id,
			Destination: dest, Stage: stage, Status: status, IngestTime: t0, StageTime: at, Source: src})
	}
	events := analytics.Source{Topic: "careflow.events", Partition: 2, Offset: 17}
	tr("m1", "", "ingest", "accepted", t0, analytics.Source{})
	tr("m1", "", "normalise", "normalised", t0.Add(time.Millisecond), events)
	tr("m1", "lab", "route", "routed", t0.Add(2*time.Millisecond), analytics.Source{})
	tr("m1", "portal", "route", "routed", t0.Add(2*time.Millisecond), analytics.Source{})
	tr("m1", "lab", "deliver", "delivered", t0.Add(time.Second), analytics.Source{})
	tr("m1", "portal", "deliver", "retrying", t0.Add(2*time.Second), analytics.Source{})
	tr("m2", "", "ingest", "accepted", t0.Add(time.Minute), analytics.Source{})
	tr("m2", "", "validate", "dead_lettered", t0.Add(time.Minute+time.Second), analytics.Source{})
	// The same millisecond at two stages: the later stage is the status.
	tr("m3", "", "ingest", "accepted", t0.Add(2*time.Minute), analytics.Source{})
	tr("m3", "", "validate", "valid", t0.Add(2*time.Minute), analytics.Source{})
	insertTwice(t, st, &b)

	cases := []struct {
		name string
		q    analytics.MessageQuery
		want []string
	}{
		{"everything, newest first", analytics.MessageQuery{}, []string{"m4", "m3", "m2", "m1"}},
		{"message id", analytics.MessageQuery{Text: "m1"}, []string{"m1"}},
		{"correlation id", analytics.MessageQuery{Text: "corr-2"}, []string{"m2"}},
		{"the sender's control id", analytics.MessageQuery{Text: "C-1"}, []string{"m3", "m1"}},
		{"placer order with namespace", analytics.MessageQuery{Text: "P100^PAS"}, []string{"m4", "m2"}},
		{"bare placer order number", analytics.MessageQuery{Text: "P100"}, []string{"m4", "m2"}},
		{"bare filler order number", analytics.MessageQuery{Text: "F200"}, []string{"m2"}},
		{"interface", analytics.MessageQuery{Interface: "lab"}, []string{"m2"}},
		{"message type", analytics.MessageQuery{MessageType: "ADT"}, []string{"m3", "m1"}},
		{"message type and trigger", analytics.MessageQuery{MessageType: "ADT^A08"}, []string{"m3"}},
		{"patients", analytics.MessageQuery{PatientHashes: []string{"p1", "p3"}}, []string{"m4", "m3", "m1"}},
		{"since", analytics.MessageQuery{Since: t0.Add(time.Minute)}, []string{"m4", "m3", "m2"}},
		{"until, exclusive", analytics.MessageQuery{Until: t0.Add(time.Minute)}, []string{"m1"}},
		{"since and until", analytics.MessageQuery{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []string{"m3", "m2"}},
		{"limit", analytics.MessageQuery{Limit: 2}, []string{"m4", "m3"}},
		{"text and type together", analytics.MessageQuery{Text: "C-1", MessageType: "ADT^A01"}, []string{"m1"}},
		{"no match", analytics.MessageQuery{Text: "nope"}, []string{}},
		{"no match in the window", analytics.MessageQuery{Text: "m1", Since: t0.Add(time.Hour)}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := st.Messages(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), c.want) {
				t.Errorf("Messages(%+v) = %v; want %v", c.q, ids(got), c.want)
			}
		})
	}

	m1, err := st.Message(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	want := analytics.Message{MessageID: "m1", CorrelationID: "m1", Interface: "ehr", Transport: "mllp", ControlID: "C-1",
		MessageType: "ADT", TriggerEvent: "A01", PatientHash: "p1", IngestTime: t0, Status: "retrying",
		Destinations: map[string]string{"lab": "delivered", "portal": "retrying"},
		Raw:          analytics.Source{Topic: "careflow.raw", Partition: 1, Offset: 11}, Event: events}
	if !reflect.DeepEqual(m1, want) {
		t.Errorf("Message(m1) =\n%+v\nwant\n%+v", m1, want)
	}
	for id, want := range map[string]string{"m2": "dead_lettered", "m3": "valid", "m4": ""} {
		m, err := st.Message(ctx, id)
		if err != nil || m.Status != want {
			t.Errorf("Message(%s).Status = %q, %v; want %q", id, m.Status, err, want)
		}
		if m.Event != (analytics.Source{}) {
			t.Errorf("Message(%s).Event = %+v; want zero: it was not normalised", id, m.Event)
		}
	}
	if m2, _ := st.Message(ctx, "m2"); !reflect.DeepEqual(m2.OrderNumbers, []string{"F200^LAB", "P100^PAS"}) {
		t.Errorf("m2 order numbers = %v; want its filler's and placer's", m2.OrderNumbers)
	}
	if _, err := st.Message(ctx, "corr-2"); !errors.Is(err, analytics.ErrNoRows) {
		t.Errorf("Message by a correlation id: %v; want ErrNoRows (only a message id names one message)", err)
	}
}

func TestOrderHistory(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	var b analytics.Batch
	ot := func(id, placer, filler, from, to string, at time.Time) {
		b.Orders = append(b.Orders, analytics.OrderTransition{TransitionID: id, PlacerOrder: placer, FillerOrder: filler,
			FromState: from, State: to, MessageID: id, Interface: "ehr", At: at})
	}
	// Inserted out of time order: the history sorts by time.
	ot("o3", "P100^PAS", "F200^LAB", "accepted", "final", t0.Add(2*time.Hour))
	ot("o1", "P100^PAS", "", "", "placed", t0)
	ot("o2", "P100^PAS", "F200^LAB", "placed", "accepted", t0.Add(time.Minute))
	ot("x1", "P999^PAS", "", "", "placed", t0.Add(time.Second))
	insertTwice(t, st, &b)

	states := func(list []analytics.OrderTransition) []string {
		out := []string{}
		for _, o := range list {
			out = append(out, o.State)
		}
		return out
	}
	cases := []struct {
		name    string
		numbers []string
		want    []string
	}{
		{"placer with namespace", []string{"P100^PAS"}, []string{"placed", "accepted", "final"}},
		{"bare filler number", []string{"F200"}, []string{"accepted", "final"}},
		{"two orders", []string{"P100^PAS", "P999^PAS"}, []string{"placed", "placed", "accepted", "final"}},
		{"an empty number matches nothing", []string{""}, []string{}},
		{"unknown", []string{"P404"}, []string{}},
		{"none", nil, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := st.OrderHistory(ctx, c.numbers)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(states(got), c.want) {
				t.Errorf("OrderHistory(%q) = %v; want %v", c.numbers, states(got), c.want)
			}
		})
	}
	got, _ := st.OrderHistory(ctx, []string{"P100^PAS"})
	if len(got) == 3 && (got[0].At != t0 || got[1].FromState != "placed" || got[1].FillerOrder != "F200^LAB" || got[0].TransitionID != "o1") {
		t.Errorf("first transitions = %+v; want o1 at t0, then o2 from placed with its filler", got[:2])
	}
}
