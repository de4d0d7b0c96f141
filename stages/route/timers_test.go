package route

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// clock is a settable Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// Route's timers, on a clock of the test's: an application acknowledgement
// whose destination never answers goes out as AE "no answer from lab"
// once reply_timeout has passed, exactly once; a result for an order
// careflow does not know waits correlation_wait, then is routed (or held,
// with unknown_order: hold) with result_for_unknown_order; one whose
// order arrives in time is routed with the order, with no exception.
func TestTimers(t *testing.T) {
	tests := []struct {
		name        string
		holdUnknown bool
	}{{"deliver after the wait", false}, {"hold after the wait", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: routeTime}
			tb := stages.NewTable(topics.OrderState)
			h := newHarnessWith(t, demoRoutes, func(c *Config) {
				c.Orders, c.Now = tb, clk.now
				c.Interfaces = map[string]Policy{
					"ehr":         {ReplyTo: "ehr-notifications", ReplyTimeout: time.Minute, CorrelationWait: 30 * time.Second},
					"lab-results": {HoldUnknown: tc.holdUnknown},
				}
			})
			step := func(outs []stages.Envelope, err error) map[string][]stages.Envelope {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				tb.Commit()
				h.stage.Timers().Commit()
				by := map[string][]stages.Envelope{}
				for _, o := range outs {
					by[o.Topic] = append(by[o.Topic], o)
				}
				return by
			}
			process := func(ev *avro.ClinicalEvent) map[string][]stages.Envelope {
				t.Helper()
				return step(h.stage.Process(context.Background(), h.input(t, ev)))
			}
			tick := func(after time.Duration) map[string][]stages.Envelope {
				t.Helper()
				clk.t = routeTime.Add(after)
				return step(h.stage.Tick(context.Background(), clk.t))
			}
			decode := func(env stages.Envelope) avro.ClinicalEvent {
				t.Helper()
				var ev avro.ClinicalEvent
				if err := h.serde.Decode(env.Value, &ev); err != nil {
					t.Fatal(err)
				}
				return ev
			}

			// An enhanced-mode order whose lab never answers.
			ord := order("ORM", "O01")
			ord.EventID, ord.CorrelationID = "o1", "o1"
			ord.Provenance.Interface, ord.Provenance.ControlID = "ehr", "EHR-1"
			ord.Provenance.AcceptAckType, ord.Provenance.AppAckType = "AL", "AL"
			if by := process(ord); len(by[topics.Outbound("lab")]) != 1 || len(by[topics.Outbound("ehr-notifications")]) != 0 {
				t.Fatalf("order: outputs %v", keys(by))
			}
			// A result for an order never placed, and one whose order
			// comes in time.
			lost := result("lab-results", "F")
			lost.EventID, lost.Orders[0].PlacerOrderNumber = "r-lost", "LOST1"
			early := result("lab-results", "F")
			early.EventID, early.Orders[0].PlacerOrderNumber = "r-early", "EARLY1"
			for _, ev := range []*avro.ClinicalEvent{lost, early} {
				by := process(ev)
				if len(by[topics.Outbound("ehr-results")]) != 0 || len(by[topics.Exceptions]) != 0 {
					t.Fatalf("%s routed before the wait: %v", ev.EventID, keys(by))
				}
				if o := decodeOutcome(t, h, by[topics.Outcomes]); o.Status != avro.StatusHeld || o.ErrorCode != CodeAwaiting {
					t.Errorf("%s: outcome %s %s, want held %s", ev.EventID, o.Status, o.ErrorCode, CodeAwaiting)
				}
			}
			late := order("ORM", "O01")
			late.EventID, late.CorrelationID = "o-early", "o-early"
			late.Provenance.Interface = "ehr"
			late.Orders[0].PlacerOrderNumber = "EARLY1"
			by := process(late)
			released := by[topics.Outbound("ehr-results")]
			if len(released) != 1 || decode(released[0]).EventID != "r-early" || decode(released[0]).CorrelationID != "o-early" {
				t.Fatalf("the order did not release its result, joined: %v", keys(by))
			}
			if len(by[topics.Exceptions]) != 0 {
				t.Errorf("a result whose order came in time raised an exception")
			}

			if by := tick(29 * time.Second); len(by) != 0 {
				t.Errorf("tick before any timer: outputs %v", keys(by))
			}
			by = tick(31 * time.Second)
			if got := len(by[topics.Outbound("ehr-results")]); got != map[bool]int{false: 1, true: 0}[tc.holdUnknown] {
				t.Errorf("after the wait: %d routed to ehr-results", got)
			}
			if len(by[topics.Exceptions]) != 1 {
				t.Fatalf("after the wait: outputs %v, want one exception", keys(by))
			}
			var x avro.Exception
			if err := h.serde.Decode(by[topics.Exceptions][0].Value, &x); err != nil || x.Code != lifecycle.ResultForUnknownOrder || x.PlacerOrder != "LOST1" {
				t.Errorf("exception %+v (%v), want result_for_unknown_order for LOST1", x, err)
			}
			if by := tick(45 * time.Second); len(by) != 0 {
				t.Errorf("the wait fired twice: %v", keys(by))
			}

			by = tick(61 * time.Second)
			acks := by[topics.Outbound("ehr-notifications")]
			if len(acks) != 1 {
				t.Fatalf("after reply_timeout: outputs %v, want one application ACK", keys(by))
			}
			ack := decode(acks[0])
			if ack.MessageType != "ACK" || ack.Acknowledgment == nil || ack.Acknowledgment.Code != "AE" ||
				ack.Acknowledgment.ControlID != "EHR-1" || len(ack.Acknowledgment.Errors) != 1 ||
				ack.Acknowledgment.Errors[0].ApplicationCode != CodeNoAnswer || ack.Acknowledgment.Text != "no answer from lab" {
				t.Errorf("application ACK %+v %+v", ack, ack.Acknowledgment)
			}
			if by := tick(2 * time.Minute); len(by) != 0 {
				t.Errorf("the acknowledgement was sent twice: %v", keys(by))
			}
		})
	}
}

func decodeOutcome(t *testing.T, h *harness, envs []stages.Envelope) avro.DeliveryOutcome {
	t.Helper()
	if len(envs) != 1 {
		t.Fatalf("%d outcomes, want 1", len(envs))
	}
	var o avro.DeliveryOutcome
	if err := h.serde.Decode(envs[0].Value, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// A route's expect raises late_acceptance and late_result on the orders
// it sent, once each, tighter for a stat order (priority S).
func TestLateOrders(t *testing.T) {
	clk := &clock{t: routeTime}
	tb := stages.NewTable(topics.OrderState)
	routes := []Route{{Name: "lab-orders", Destination: "lab", When: `event.message_type in ["ORM", "OML"]`,
		Expect: Expectation{Expect: lifecycle.Expect{AcceptedWithin: 5 * time.Minute, ResultedWithin: time.Hour},
			ByPriority: map[string]lifecycle.Expect{"S": {AcceptedWithin: time.Minute}}}}}
	h := newHarnessWith(t, routes, func(c *Config) { c.Orders, c.Now = tb, clk.now })
	for _, o := range []struct{ id, placer, priority string }{{"o-routine", "R1", "R"}, {"o-stat", "S1", "s"}} {
		ev := order("ORM", "O01")
		ev.EventID, ev.CorrelationID = o.id, o.id
		ev.Orders[0].PlacerOrderNumber, ev.Orders[0].Priority = o.placer, o.priority
		if _, err := h.stage.Process(context.Background(), h.input(t, ev)); err != nil {
			t.Fatal(err)
		}
		tb.Commit()
		h.stage.Timers().Commit()
	}
	late := func(after time.Duration) []string {
		t.Helper()
		clk.t = routeTime.Add(after)
		outs, err := h.stage.Tick(context.Background(), clk.t)
		if err != nil {
			t.Fatal(err)
		}
		tb.Commit()
		h.stage.Timers().Commit()
		var got []string
		for _, o := range outs {
			if o.Topic != topics.Exceptions {
				continue
			}
			var x avro.Exception
			if err := h.serde.Decode(o.Value, &x); err != nil {
				t.Fatal(err)
			}
			got = append(got, x.PlacerOrder+" "+x.Code)
		}
		return got
	}
	for _, step := range []struct {
		after time.Duration
		want  string
	}{
		{30 * time.Second, ""},
		{2 * time.Minute, "S1 late_acceptance"},
		{6 * time.Minute, "R1 late_acceptance"},
		{7 * time.Minute, ""},
		{61 * time.Minute, "R1 late_result,S1 late_result"},
		{2 * time.Hour, ""},
	} {
		got := late(step.after)
		slices.Sort(got)
		if strings.Join(got, ",") != step.want {
			t.Errorf("after %s: exceptions %q, want %q", step.after, got, step.want)
		}
	}
}

// BenchmarkRouteWithState is route with its state stores on, over a mix of
// ADT updates, orders and results for 200 patients: what the lifecycle,
// the sequencing and the key state add to BenchmarkRoute.
func BenchmarkRouteWithState(b *testing.B) {
	patients, orders := stages.NewTable(topics.PatientState), stages.NewTable(topics.OrderState)
	h := newHarnessWith(b, demoRoutes, func(c *Config) { c.Patients, c.Orders = patients, orders })
	var ins []stages.Envelope
	for i := range 200 {
		key := []byte(fmt.Sprintf("MRN%03d^HOSP", i))
		a := at("A08", fmt.Sprintf("a%d", i), "20250314100000", "20250314100000")
		o := order("ORM", "O01")
		o.EventID, o.Orders[0].PlacerOrderNumber = fmt.Sprintf("o%d", i), fmt.Sprintf("P%d", i)
		r := result("lab-results", "F")
		r.EventID, r.Orders[0].PlacerOrderNumber = fmt.Sprintf("r%d", i), fmt.Sprintf("P%d", i)
		for _, ev := range []*avro.ClinicalEvent{a, o, r} {
			in := h.input(b, ev)
			in.Key = key
			ins = append(ins, in)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := h.stage.Process(ctx, ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
		i++
		if i%100 == 0 {
			patients.Commit()
			orders.Commit()
		}
	}
}

// A timer's firing aborts with its transaction: the next Tick fires it
// again; and a timer set by an aborted transaction never fires.
func TestTimersAbortWithTheTransaction(t *testing.T) {
	clk := &clock{t: routeTime}
	tb := stages.NewTable(topics.OrderState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) {
		c.Orders, c.Now = tb, clk.now
		c.Interfaces = map[string]Policy{"ehr": {ReplyTo: "ehr-notifications", ReplyTimeout: time.Minute}}
	})
	state := stages.TxnStates{tb, h.stage.Timers()}
	enhanced := func(id string) *avro.ClinicalEvent {
		ev := order("ORM", "O01")
		ev.EventID, ev.Orders[0].PlacerOrderNumber = id, "P-"+id
		ev.Provenance.Interface, ev.Provenance.ControlID = "ehr", "C-"+id
		ev.Provenance.AcceptAckType, ev.Provenance.AppAckType = "AL", "AL"
		return ev
	}
	acks := func(after time.Duration) int {
		t.Helper()
		clk.t = routeTime.Add(after)
		outs, err := h.stage.Tick(context.Background(), clk.t)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, o := range outs {
			if o.Topic == topics.Outbound("ehr-notifications") {
				n++
			}
		}
		return n
	}
	if _, err := h.stage.Process(context.Background(), h.input(t, enhanced("kept"))); err != nil {
		t.Fatal(err)
	}
	state.Commit()
	if _, err := h.stage.Process(context.Background(), h.input(t, enhanced("lost"))); err != nil {
		t.Fatal(err)
	}
	state.Abort() // the second order's transaction never committed
	if n := acks(61 * time.Second); n != 1 {
		t.Fatalf("first tick: %d acknowledgements, want 1 (the committed order's)", n)
	}
	state.Abort() // and the tick's transaction did not commit either
	if n := acks(62 * time.Second); n != 1 {
		t.Fatalf("after the tick's abort: %d acknowledgements, want the same one again", n)
	}
	state.Commit()
	if n := acks(63 * time.Second); n != 0 {
		t.Errorf("after the commit: %d acknowledgements, want none", n)
	}
	// A replay of the answered order is not awaited again: no second ACK.
	if _, err := h.stage.Process(context.Background(), h.input(t, enhanced("kept"))); err != nil {
		t.Fatal(err)
	}
	state.Commit()
	if n := acks(3 * time.Minute); n != 0 {
		t.Errorf("a replay of an answered message: %d acknowledgements, want none", n)
	}
}

// A result that names only the filler number waits until careflow learns
// that number (the filler's response), not for the whole wait.
func TestFillerNumberReleasesAWaitingResult(t *testing.T) {
	clk := &clock{t: routeTime}
	tb := stages.NewTable(topics.OrderState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) {
		c.Orders, c.Now = tb, clk.now
		c.Interfaces = map[string]Policy{"ehr": {CorrelationWait: 30 * time.Second}}
	})
	process := func(ev *avro.ClinicalEvent) []stages.Envelope {
		t.Helper()
		outs, err := h.stage.Process(context.Background(), h.input(t, ev))
		if err != nil {
			t.Fatal(err)
		}
		tb.Commit()
		h.stage.Timers().Commit()
		var routed []stages.Envelope
		for _, o := range outs {
			if o.Topic == topics.Outbound("ehr-results") {
				routed = append(routed, o)
			}
		}
		return routed
	}
	ord := order("ORM", "O01")
	ord.EventID, ord.Orders[0].PlacerOrderNumber = "o1", "P7"
	process(ord)
	res := result("lab-results", "F")
	res.EventID, res.Orders[0].PlacerOrderNumber, res.Orders[0].FillerOrderNumber = "r1", "", "F7"
	if n := len(process(res)); n != 0 {
		t.Fatalf("a result for an unknown filler number was routed at once (%d)", n)
	}
	orr := order("ORR", "O02")
	orr.EventID, orr.Orders[0].Control = "a1", "OK"
	orr.Orders[0].PlacerOrderNumber, orr.Orders[0].FillerOrderNumber = "P7", "F7"
	if n := len(process(orr)); n != 1 {
		t.Errorf("the filler's response released %d results, want the one waiting", n)
	}
}

// A key keeps at most maxWaiting results waiting: one more sends the
// oldest on at the next tick, so the entry stays bounded.
func TestWaitingIsBounded(t *testing.T) {
	clk := &clock{t: routeTime}
	tb := stages.NewTable(topics.OrderState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) {
		c.Orders, c.Now = tb, clk.now
		c.Interfaces = map[string]Policy{"ehr": {CorrelationWait: time.Hour}}
	})
	for i := range maxWaiting + 1 {
		res := result("lab-results", "F")
		res.EventID, res.Orders[0].PlacerOrderNumber = fmt.Sprintf("r%02d", i), fmt.Sprintf("U%02d", i)
		if _, err := h.stage.Process(context.Background(), h.input(t, res)); err != nil {
			t.Fatal(err)
		}
		tb.Commit()
		h.stage.Timers().Commit()
	}
	clk.t = routeTime.Add(time.Second)
	outs, err := h.stage.Tick(context.Background(), clk.t)
	if err != nil {
		t.Fatal(err)
	}
	var released []string
	for _, o := range outs {
		if o.Topic == topics.Outbound("ehr-results") {
			var ev avro.ClinicalEvent
			if err := h.serde.Decode(o.Value, &ev); err != nil {
				t.Fatal(err)
			}
			released = append(released, ev.EventID)
		}
	}
	if strings.Join(released, ",") != "r00" {
		t.Errorf("released %v a second in, want the oldest, r00, alone", released)
	}
}
