package lifecycle

import (
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
)

var t0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

// msg builds an event of msgType whose one order has the given numbers,
// ORC-1, ORC-5 and OBR-25, with one observation of value v.
func msg(id, msgType, placer, filler, control, status, result, v string) *avro.ClinicalEvent {
	ev := &avro.ClinicalEvent{EventID: id, CorrelationID: id, MessageType: msgType,
		Provenance: avro.Provenance{Interface: "ehr"},
		Orders:     []avro.Order{{Control: control, Status: status, ResultStatus: result}}}
	o := &ev.Orders[0]
	o.PlacerOrderNumber, o.PlacerNamespace, _ = strings.Cut(placer, "^")
	o.FillerOrderNumber, o.FillerNamespace, _ = strings.Cut(filler, "^")
	if v != "" {
		ev.Observations = []avro.Observation{{Code: "HB", Value: v, Units: "g/L", OrderIndex: 0}}
	}
	return ev
}

type step struct {
	ev    *avro.ClinicalEvent
	state string // the order's state after it ("" : no such order)
	trans bool   // a transition is made
	exc   string // the exception raised, if any
	hold  bool   // the message is held back
}

func run(t *testing.T, steps []step) {
	t.Helper()
	var p Patient
	for i, s := range steps {
		out := Apply(&p, s.ev, t0.Add(time.Duration(i)*time.Minute))
		if got := len(out.Transitions) > 0; got != s.trans {
			t.Errorf("step %d (%s): transition %v, want %v (%+v)", i, s.ev.EventID, got, s.trans, out.Transitions)
		}
		var exc string
		if len(out.Exceptions) > 0 {
			exc = out.Exceptions[0].Code
			if strings.Contains(out.Exceptions[0].Reason, "Doe") {
				t.Errorf("step %d: reason names the patient", i)
			}
		}
		if exc != s.exc || out.Hold != s.hold {
			t.Errorf("step %d (%s): exception %q hold %v, want %q hold %v (%+v)", i, s.ev.EventID, exc, out.Hold, s.exc, s.hold, out.Exceptions)
		}
		state := ""
		if len(p.Orders) > 0 {
			state = p.Orders[0].State
		}
		if state != s.state {
			t.Errorf("step %d (%s): state %q, want %q", i, s.ev.EventID, state, s.state)
		}
	}
}

func TestLifecycle(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"placed to final", []step{
			{msg("o1", "ORM", "RP1^TRAKCARE", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r0", "ORR", "RP1^TRAKCARE", "F1^LAB", "OK", "", "", ""), Accepted, true, "", false},
			{msg("r1", "ORU", "RP1^TRAKCARE", "F1^LAB", "RE", "IP", "", ""), InProgress, true, "", false},
			{msg("r2", "ORU", "RP1", "F1^LAB", "RE", "", "P", "140"), Preliminary, true, "", false},      // namespace left out
			{msg("r3", "ORU", "", "F1^LAB", "RE", "", "F", "141"), Final, true, "", false},               // by filler number
			{msg("r3b", "ORU", "RP1^TRAKCARE", "F1^LAB", "RE", "", "F", "141"), Final, false, "", false}, // the same final again
			{msg("r4", "ORU", "RP1^TRAKCARE", "F1^LAB", "RE", "", "C", "139"), Corrected, true, "", false},
		}},
		{"a preliminary after the final regresses", []step{
			{msg("o1", "OML", "RP2^TRAKCARE", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r1", "ORU", "RP2^TRAKCARE", "", "RE", "", "F", "5"), Final, true, "", false},
			{msg("r2", "ORU", "RP2^TRAKCARE", "", "RE", "", "P", "4"), Final, false, StatusRegressed, true},
		}},
		{"a second final with other values conflicts", []step{
			{msg("o1", "ORM", "RP3", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r1", "ORU", "RP3", "", "RE", "", "F", "5"), Final, true, "", false},
			{msg("r2", "ORU", "RP3", "", "RE", "", "F", "6"), Final, false, ConflictingFinal, true},
		}},
		{"cancelled after acceptance, then a late result", []step{
			{msg("o1", "ORM", "RP4^TRAKCARE", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r0", "ORL", "RP4^TRAKCARE", "F4", "OK", "", "", ""), Accepted, true, "", false},
			{msg("o2", "ORM", "RP4^TRAKCARE", "", "CA", "", "", ""), Cancelled, true, "", false},
			{msg("r1", "ORU", "RP4^TRAKCARE", "F4", "RE", "", "F", "7"), Cancelled, false, ResultAfterCancel, false},
		}},
		{"rejected by the filler", []step{
			{msg("o1", "ORM", "RP5", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r0", "ORR", "RP5", "", "UA", "", "", ""), Rejected, true, OrderRejected, false},
			{msg("r1", "ORU", "RP5", "", "RE", "", "F", "1"), Rejected, false, ResultAfterCancel, false},
		}},
		{"unable to cancel leaves the order standing", []step{
			{msg("o1", "ORM", "RP10", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r0", "ORR", "RP10", "F10", "UC", "", "", ""), Placed, false, "", false},
			{msg("r1", "ORU", "RP10", "F10", "RE", "", "F", "1"), Final, true, "", false},
		}},
		{"OBR-25 I is in progress, not preliminary", []step{
			{msg("o1", "ORM", "RP11", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r1", "ORU", "RP11", "", "RE", "", "I", ""), InProgress, true, "", false},
		}},
		{"a result for an order never placed", []step{
			{msg("r1", "ORU", "RP6", "", "RE", "", "F", "1"), "", false, ResultForUnknownOrder, false},
		}},
		{"a result naming no order", []step{
			{msg("r1", "ORU", "", "", "RE", "", "F", "1"), "", false, ResultForUnknownOrder, false},
		}},
		{"placing twice is a resend", []step{
			{msg("o1", "ORM", "RP7", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("o1b", "ORM", "RP7", "", "NW", "", "", ""), Placed, false, "", false},
		}},
		{"another namespace is another order", []step{
			{msg("o1", "ORM", "RP8^TRAKCARE", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r1", "ORU", "RP8^OTHERPAS", "", "RE", "", "F", "1"), Placed, false, ResultForUnknownOrder, false},
		}},
		{"OBR-25 X cancels", []step{
			{msg("o1", "ORM", "RP9", "", "NW", "", "", ""), Placed, true, "", false},
			{msg("r1", "ORU", "RP9", "", "RE", "", "X", ""), Cancelled, true, "", false},
		}},
		{"ADT is not about orders", []step{
			{&avro.ClinicalEvent{EventID: "a1", MessageType: "ADT", Orders: nil}, "", false, "", false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, tc.steps) })
	}
}

// A result joins its order's journey: its correlation is the placing
// message's; the transition carries the state it left.
func TestResultsJoinTheOrdersJourney(t *testing.T) {
	var p Patient
	Apply(&p, msg("o1", "ORM", "RP1", "", "NW", "", "", ""), t0)
	out := Apply(&p, msg("r1", "ORU", "RP1", "F1", "RE", "", "P", "1"), t0.Add(time.Minute))
	if out.Correlation != "o1" {
		t.Errorf("result correlation %q, want the order's (o1)", out.Correlation)
	}
	if len(out.Transitions) != 1 || out.Transitions[0].From != Placed || out.Transitions[0].Order.State != Preliminary ||
		out.Transitions[0].Order.Filler != "F1" || out.Transitions[0].Order.MessageID != "r1" {
		t.Errorf("transition %+v", out.Transitions)
	}
}

// Closed orders are forgotten after Retention, and a patient never holds
// more than MaxOrders.
func TestPrune(t *testing.T) {
	now := t0
	p := Patient{Orders: []Order{
		{Placer: "old-final", State: Final, Updated: now.Add(-Retention - time.Hour)},
		{Placer: "old-open", State: Placed, Updated: now.Add(-Retention - time.Hour)},
		{Placer: "new-final", State: Final, Updated: now},
	}}
	p.Prune(now)
	if len(p.Orders) != 2 || p.Orders[0].Placer != "old-open" || p.Orders[1].Placer != "new-final" {
		t.Fatalf("after retention %+v, want the open order and the recent final", p.Orders)
	}
	for i := range MaxOrders + 5 {
		p.Orders = append(p.Orders, Order{Placer: "o" + string(rune('a'+i%26)), State: Cancelled, Updated: now})
	}
	p.Prune(now)
	if len(p.Orders) != MaxOrders || p.Orders[0].Placer != "old-open" {
		t.Fatalf("%d orders, first %s; want %d with the open one kept", len(p.Orders), p.Orders[0].Placer, MaxOrders)
	}
}

// Deliver's outcomes move the orders their message placed: delivered is
// sent, an AA also accepted (a CA only stored), a rejection rejects; an
// outcome for another message, or for a closed order, changes nothing.
func TestApplyDelivery(t *testing.T) {
	tests := []struct {
		name  string
		d     Delivery
		state string
		from  []string // the transitions' from states
		exc   string
	}{
		{"AA", Delivery{MessageID: "o1", Delivered: true, AckCode: "AA"}, Accepted, []string{Placed, Sent}, ""},
		{"CA", Delivery{MessageID: "o1", Delivered: true, AckCode: "CA"}, Sent, []string{Placed}, ""},
		{"HTTP 2xx", Delivery{MessageID: "o1", Delivered: true}, Sent, []string{Placed}, ""},
		{"AE", Delivery{MessageID: "o1", Destination: "lab", Delivered: false, AckCode: "AE", Reason: "unknown test code"}, Rejected, []string{Placed}, OrderRejected},
		{"another message", Delivery{MessageID: "r9", Delivered: true, AckCode: "AA"}, Placed, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Patient
			Apply(&p, msg("o1", "ORM", "RP1", "", "NW", "", "", ""), t0)
			out := ApplyDelivery(&p, tc.d, t0.Add(time.Minute))
			var from []string
			for _, tr := range out.Transitions {
				from = append(from, tr.From)
			}
			if p.Orders[0].State != tc.state || strings.Join(from, ",") != strings.Join(tc.from, ",") {
				t.Errorf("state %s via %v, want %s via %v", p.Orders[0].State, from, tc.state, tc.from)
			}
			exc := ""
			if len(out.Exceptions) > 0 {
				exc = out.Exceptions[0].Code
			}
			if exc != tc.exc || (exc != "" && !strings.Contains(out.Exceptions[0].Reason, "unknown test code")) {
				t.Errorf("exceptions %+v, want %q with the reason", out.Exceptions, tc.exc)
			}
		})
	}
	var p Patient
	Apply(&p, msg("o1", "ORM", "RP1", "", "NW", "", "", ""), t0)
	Apply(&p, msg("o2", "ORM", "RP1", "", "CA", "", "", ""), t0)
	if out := ApplyDelivery(&p, Delivery{MessageID: "o1", Delivered: true, AckCode: "AA"}, t0); len(out.Transitions) != 0 || p.Orders[0].State != Cancelled {
		t.Errorf("a cancelled order moved on delivery: %+v", out)
	}
}
