// This file is the orders' timeliness: a route's expectation of how soon
// the filler accepts and results an order, and the late_acceptance and
// late_result exceptions when it does not. Route's timers (Tick) ask
// Overdue when NextDeadline passes.

package lifecycle

import (
	"fmt"
	"slices"
	"time"
)

// Expect is how soon an order should be accepted by its filler and
// resulted (a first preliminary or final result), counted from when it
// was placed; zero expects nothing.
type Expect struct {
	AcceptedWithin, ResultedWithin time.Duration
}

// OrderKey is the identity careflow keys an order by: its number with
// its namespace, "RP1^TRAKCARE" (EI components 1 and 2).
func OrderKey(number, namespace string) string { return ei(number, namespace) }

// Expect sets the deadlines of the order numbered placer, placed at.
func (p *Patient) Expect(placer string, e Expect, at time.Time) {
	i := slices.IndexFunc(p.Orders, func(o Order) bool { return o.Placer == placer })
	if i < 0 {
		return
	}
	o := &p.Orders[i]
	if e.AcceptedWithin > 0 {
		o.AcceptBy = at.Add(e.AcceptedWithin).UTC()
	}
	if e.ResultedWithin > 0 {
		o.ResultBy = at.Add(e.ResultedWithin).UTC()
	}
}

// awaiting reports whether o still waits for what deadline code guards.
func (o *Order) awaiting(code string) bool {
	switch code {
	case LateAcceptance:
		return !o.AcceptBy.IsZero() && (o.State == Placed || o.State == Sent)
	case LateResult:
		return !o.ResultBy.IsZero() && (o.State == Placed || o.State == Sent || o.State == Accepted || o.State == InProgress)
	}
	return false
}

// Overdue returns an exception for each deadline of p's orders that has
// passed at now and was not raised before, and marks it raised.
func (p *Patient) Overdue(now time.Time) []Exception {
	var out []Exception
	for i := range p.Orders {
		o := &p.Orders[i]
		for _, c := range []struct {
			code string
			by   time.Time
			what string
		}{{LateAcceptance, o.AcceptBy, "accepted"}, {LateResult, o.ResultBy, "resulted"}} {
			if !o.awaiting(c.code) || now.Before(c.by) || slices.Contains(o.Late, c.code) {
				continue
			}
			o.Late = append(o.Late, c.code)
			out = append(out, Exception{Code: c.code, Order: o.Placer, Filler: o.Filler, Deliver: true,
				Reason: fmt.Sprintf("order %s was not %s by %s (it is %s)", o.Placer, c.what, c.by.Format(time.RFC3339), o.State)})
		}
	}
	return out
}

// NextDeadline is the earliest deadline of p's orders still to be watched;
// zero when none is.
func (p *Patient) NextDeadline() time.Time {
	var d time.Time
	for i := range p.Orders {
		o := &p.Orders[i]
		for _, c := range []struct {
			code string
			by   time.Time
		}{{LateAcceptance, o.AcceptBy}, {LateResult, o.ResultBy}} {
			if o.awaiting(c.code) && !slices.Contains(o.Late, c.code) && (d.IsZero() || c.by.Before(d)) {
				d = c.by
			}
		}
	}
	return d
}

// LateAt lists the deadlines o has missed by now: those raised, and those
// passed but not raised yet (route's timers raise them within a tick).
func (o *Order) LateAt(now time.Time) []string {
	out := slices.Clone(o.Late)
	for _, c := range []struct {
		code string
		by   time.Time
	}{{LateAcceptance, o.AcceptBy}, {LateResult, o.ResultBy}} {
		if o.awaiting(c.code) && !now.Before(c.by) && !slices.Contains(out, c.code) {
			out = append(out, c.code)
		}
	}
	return out
}
