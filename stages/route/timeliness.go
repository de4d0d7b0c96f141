// This file holds routes to their timeliness expectations: an order a
// route sends should be accepted by its filler, and resulted, within the
// route's expect (tighter for urgent priorities). The deadlines are kept
// on the order (lifecycle.Order) and watched by route's timers (Tick),
// which raise late_acceptance and late_result once each.

package route

import (
	"slices"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// Expectation is a route's timeliness expectation: a default, and
// overrides by the order's priority as sent (OBR-27.6, ORC-7.6 or TQ1-9;
// "S" is stat in HL7 table 0027), matched without regard to case.
type Expectation struct {
	lifecycle.Expect
	ByPriority map[string]lifecycle.Expect
}

// For is the expectation for an order of priority p: the priority's
// override where it gives a time, else the default.
func (e Expectation) For(p string) lifecycle.Expect {
	out := e.Expect
	for k, v := range e.ByPriority {
		if strings.EqualFold(k, strings.TrimSpace(p)) {
			if v.AcceptedWithin > 0 {
				out.AcceptedWithin = v.AcceptedWithin
			}
			if v.ResultedWithin > 0 {
				out.ResultedWithin = v.ResultedWithin
			}
		}
	}
	return out
}

// expect sets the deadlines of the orders ev placed (placed, by
// number^namespace; an order it names that was placed before keeps its
// deadlines): the tightest of the expectations of the routes that sent it.
func (s *Stage) expect(ks *keyState, ev *avro.ClinicalEvent, placed []string, matches []match, now time.Time) {
	if ks == nil {
		return
	}
	for i := range ev.Orders {
		o := &ev.Orders[i]
		if !slices.Contains(placed, lifecycle.OrderKey(o.PlacerOrderNumber, o.PlacerNamespace)) {
			continue
		}
		var e lifecycle.Expect
		for _, m := range matches {
			for _, x := range m.expect {
				f := x.For(o.Priority)
				e.AcceptedWithin = tighter(e.AcceptedWithin, f.AcceptedWithin)
				e.ResultedWithin = tighter(e.ResultedWithin, f.ResultedWithin)
			}
		}
		if e != (lifecycle.Expect{}) {
			ks.e.Expect(lifecycle.OrderKey(o.PlacerOrderNumber, o.PlacerNamespace), e, now)
		}
	}
}

func tighter(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// overdue raises the timeliness exceptions of ks's orders due at now.
func (s *Stage) overdue(ks *keyState, now time.Time) ([]stages.Envelope, error) {
	var out []stages.Envelope
	for _, x := range ks.e.Overdue(now) {
		ord := ks.e.Orders[indexOfOrder(ks.e.Orders, x.Order)]
		in := stages.Envelope{Topic: topics.Events, Partition: ks.partition, Key: []byte(ks.key)}
		var h stages.Headers
		h.Set(topics.HeaderCorrelationID, ord.CorrelationID)
		h.Set(topics.HeaderInterface, ord.Interface)
		h.Set(topics.StageTime(topics.StageRoute), now.UTC().Format(topics.TimeFormat))
		m := about{messageID: ord.PlacedBy, correlationID: ord.CorrelationID, controlID: ord.ControlID, iface: ord.Interface}
		outs, err := s.record(ks, in, nil, lifecycle.Outcome{Exceptions: []lifecycle.Exception{x}}, m, h, now)
		if err != nil {
			return nil, err
		}
		out = append(out, outs...)
	}
	return out, nil
}

func indexOfOrder(orders []lifecycle.Order, placer string) int {
	for i, o := range orders {
		if o.Placer == placer {
			return i
		}
	}
	return 0
}
