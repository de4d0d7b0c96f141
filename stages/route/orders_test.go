package route

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// The lifecycle on the way through route: an order's transitions go to
// careflow.orders with the state in the changelog; its results are routed
// with the order's correlation id; a preliminary after the final is held
// (an exception and a held outcome, nothing routed); a result for no known
// order is routed and raises an exception.
func TestRouteTracksOrders(t *testing.T) {
	tb := stages.NewTable(topics.OrderState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) { c.Orders = tb })
	ord := order("ORM", "O01")
	ord.EventID, ord.CorrelationID = "o1", "o1"
	ord.Orders[0].PlacerNamespace = "TRAKCARE"
	res := func(id, status, value string) *avro.ClinicalEvent {
		ev := result("lab", status)
		ev.EventID, ev.CorrelationID = id, id
		ev.Orders[0].PlacerOrderNumber, ev.Orders[0].PlacerNamespace = "P1", "TRAKCARE"
		ev.Observations = []avro.Observation{{Code: "HB", Value: value, OrderIndex: 0}}
		return ev
	}
	process := func(ev *avro.ClinicalEvent) map[string][]stages.Envelope {
		t.Helper()
		outs, err := h.stage.Process(context.Background(), h.input(t, ev))
		if err != nil {
			t.Fatalf("%s: %v", ev.EventID, err)
		}
		tb.Commit()
		by := map[string][]stages.Envelope{}
		for _, o := range outs {
			by[o.Topic] = append(by[o.Topic], o)
		}
		return by
	}
	transition := func(env stages.Envelope) avro.OrderTransition {
		t.Helper()
		var x avro.OrderTransition
		if err := h.serde.Decode(env.Value, &x); err != nil {
			t.Fatal(err)
		}
		return x
	}

	by := process(ord)
	if len(by[topics.Orders]) != 1 || len(by[topics.OrderState]) != 1 {
		t.Fatalf("order: outputs %v", keys(by))
	}
	if x := transition(by[topics.Orders][0]); x.State != lifecycle.Placed || x.PlacerOrder != "P1^TRAKCARE" || x.CorrelationID != "o1" || x.PatientKey != "MRN001^HOSP" {
		t.Errorf("placed transition %+v", x)
	}

	by = process(res("r1", "F", "140"))
	if len(by[topics.Orders]) != 1 || transition(by[topics.Orders][0]).State != lifecycle.Final {
		t.Fatalf("final: outputs %v", keys(by))
	}
	routed := 0
	for topic, envs := range by {
		if topics.DestinationOf(topic) == "" {
			continue
		}
		for _, env := range envs {
			routed++
			var ev avro.ClinicalEvent
			if err := h.serde.Decode(env.Value, &ev); err != nil || ev.CorrelationID != "o1" || env.Headers.Get(topics.HeaderCorrelationID) != "o1" {
				t.Errorf("routed result on %s has correlation %q (header %q), want the order's o1", topic, ev.CorrelationID, env.Headers.Get(topics.HeaderCorrelationID))
			}
		}
	}
	if routed == 0 {
		t.Fatalf("the final result was not routed: %v", keys(by))
	}

	by = process(res("r2", "P", "139"))
	if len(by[topics.Exceptions]) != 1 || len(by[topics.Outcomes]) != 1 || len(by) != 2 {
		t.Fatalf("preliminary after final: outputs %v, want an exception and an outcome only", keys(by))
	}
	var o avro.DeliveryOutcome
	if err := h.serde.Decode(by[topics.Outcomes][0].Value, &o); err != nil || o.Status != avro.StatusHeld || o.ErrorCode != lifecycle.StatusRegressed {
		t.Errorf("held outcome %+v (%v)", o, err)
	}

	unknown := res("r3", "F", "1")
	unknown.Orders[0].PlacerOrderNumber = "P9"
	by = process(unknown)
	var x avro.Exception
	if len(by[topics.Exceptions]) != 1 || h.serde.Decode(by[topics.Exceptions][0].Value, &x) != nil ||
		x.Code != lifecycle.ResultForUnknownOrder || x.Action != avro.ActionDelivered || x.PlacerOrder != "P9^TRAKCARE" {
		t.Errorf("unknown order: exception %+v, outputs %v", x, keys(by))
	}
	for _, st := range by[topics.OrderState] {
		var e entry
		if json.Unmarshal(st.Value, &e) != nil || len(e.Orders) != 1 || e.Orders[0].Placer != "P1^TRAKCARE" {
			t.Errorf("a result for an unknown order changed the patient's orders: %s", st.Value)
		}
	}
	// A patient careflow tracks no orders for gets no orders either: only
	// the routed result's business keys, which expire (seenFor).
	stranger := res("r4", "F", "1")
	stranger.Orders[0].PlacerOrderNumber = "P10"
	in := h.input(t, stranger)
	in.Key = []byte("OTHER^HOSP")
	outs, err := h.stage.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		var e entry
		if o.Topic == topics.OrderState && (json.Unmarshal(o.Value, &e) != nil || len(e.Orders) > 0 || len(e.Seen) == 0) {
			t.Errorf("the order state of a patient without orders: %s", o.Value)
		}
	}
}

func keys(by map[string][]stages.Envelope) []string {
	var ks []string
	for k, v := range by {
		for range v {
			ks = append(ks, k)
		}
	}
	return ks
}

// When the order changelog is gone (deleted, or lost with its broker),
// the state comes back from the transitions on careflow.orders: a
// preliminary after the recorded final is still held, and the first final
// seen again is not a conflict (transitions do not keep the values).
func TestRebuildOrdersFromTransitions(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.Orders, topics.OrderState))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	tb := stages.NewTable(topics.OrderState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) { c.Orders = tb })
	opts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, x := range []avro.OrderTransition{
		{PlacerOrder: "P1^TRAKCARE", State: lifecycle.Placed, MessageID: "o1", CorrelationID: "o1", Interface: "ehr", At: routeTime},
		{PlacerOrder: "P1^TRAKCARE", FillerOrder: "F1", FromState: lifecycle.Placed, State: lifecycle.Final, MessageID: "r1", CorrelationID: "o1", At: routeTime},
	} {
		b, err := h.serde.Encode(&x)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topics.Orders, Key: []byte("MRN001^HOSP"), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.stage.RebuildOrders(ctx, opts, []int32{0}); err != nil {
		t.Fatal(err)
	}
	res := func(id, status, value string) *avro.ClinicalEvent {
		ev := result("lab", status)
		ev.EventID, ev.CorrelationID = id, id
		ev.Orders[0].PlacerOrderNumber, ev.Orders[0].PlacerNamespace = "P1", "TRAKCARE"
		ev.Observations = []avro.Observation{{Code: "HB", Value: value, OrderIndex: 0}}
		return ev
	}
	in := h.input(t, res("r2", "P", "1"))
	in.Partition = 0
	outs, err := h.stage.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	held := false
	for _, o := range outs {
		if topics.DestinationOf(o.Topic) != "" {
			t.Fatalf("a preliminary after the rebuilt final was routed")
		}
		held = held || o.Topic == topics.Exceptions
	}
	if !held {
		t.Fatalf("no exception for a preliminary after the rebuilt final: %v", topicsOf(outs))
	}
	in = h.input(t, res("r3", "F", "2"))
	in.Partition = 0
	outs, err = h.stage.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Topic == topics.Exceptions {
			t.Fatalf("the first final after a rebuild was taken for a conflicting one")
		}
	}
}
