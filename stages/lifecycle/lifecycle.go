// Package lifecycle is the order lifecycle of issue 10, as rules: what an
// order message, a filler's response or a result does to the state of the
// orders it names, which transitions that makes, and which exceptions it
// raises instead of overwriting silently. It holds no state of its own and
// does no I/O: the route stage keeps each patient's orders (a
// stages.Table) and writes what Apply returns in its transaction.
// docs/workflows.md draws the lifecycle.
package lifecycle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
)

// States of an order, in lifecycle order.
const (
	Placed      = "placed"
	Sent        = "sent"
	Accepted    = "accepted"
	Rejected    = "rejected"
	InProgress  = "in_progress"
	Preliminary = "preliminary"
	Final       = "final"
	Corrected   = "corrected"
	Cancelled   = "cancelled"
)

// rank orders the states a result can move an order through; a result
// whose state ranks below the order's is a regression.
var rank = map[string]int{Placed: 1, Sent: 2, Accepted: 3, InProgress: 4, Preliminary: 5, Final: 6, Corrected: 7}

// Open reports whether an order in state s may still change.
func Open(s string) bool { return s != Rejected && s != Cancelled }

// Exception codes this package raises (avro.Exception.Code).
const (
	ResultForUnknownOrder = "result_for_unknown_order"
	ResultAfterCancel     = "result_after_cancel"
	OrderRejected         = "order_rejected"
	StatusRegressed       = "status_regressed"
	ConflictingFinal      = "conflicting_final"
	LateAcceptance        = "late_acceptance"
	LateResult            = "late_result"
)

// Order is one order's state, as kept between messages.
type Order struct {
	Placer        string    `json:"placer"`            // number^namespace, the order's identity
	Filler        string    `json:"filler"`            // number^namespace, once the filler said it
	State         string    `json:"state"`             // one of the states above
	CorrelationID string    `json:"corr"`              // the placing message's: every result joins its journey
	MessageID     string    `json:"msg"`               // the message of the last transition
	Updated       time.Time `json:"updated"`           // when the last transition happened
	FinalHash     string    `json:"final"`             // the final result's observations, to spot a conflicting final
	Interface     string    `json:"interface"`         // where the order was placed
	PlacedBy      string    `json:"placed_by"`         // the placing message's id: its delivery outcomes move the order
	ControlID     string    `json:"control,omitempty"` // the placing message's MSH-10: a notification's MSA-2
	// AcceptBy and ResultBy are the route's timeliness expectation
	// (Expect); Late lists the breaches already raised, so each is
	// raised once.
	AcceptBy time.Time `json:"accept_by,omitzero"`
	ResultBy time.Time `json:"result_by,omitzero"`
	Late     []string  `json:"late,omitempty"`
}

// Patient is one patient's orders, the value kept per patient key.
type Patient struct {
	Orders []Order `json:"orders"`
}

// Transition is one order changing state.
type Transition struct {
	Order Order  // after the change
	From  string // "" for a new order
}

// Exception is one thing Apply will not do silently.
type Exception struct {
	Code   string
	Order  string // the placer number it is about (the filler's when it names no placer)
	Filler string // the filler number, when known
	Reason string // never a name or a patient identifier
	// Detail is the other system's own words (a filler's MSA-3 and ERR
	// text), which may name the patient: it goes back to the placer in
	// the return notification, never to the exception record.
	Detail string
	// Deliver says whether the message should still go to its
	// destinations: a result for an unknown or cancelled order must reach
	// a person; a regression or a conflicting final would overwrite a
	// better result downstream, so it does not.
	Deliver bool
}

// Outcome is what one message does to a patient's orders.
type Outcome struct {
	Transitions []Transition
	Exceptions  []Exception
	// Correlation is the correlation id of the order the message belongs
	// to, when it names a known one: results join their order's journey.
	Correlation string
	// Hold is false when every exception lets the message through.
	Hold bool
}

// ei is an order number with its namespace, as careflow keys orders.
func ei(number, namespace string) string {
	if number == "" {
		return ""
	}
	if namespace == "" {
		return number
	}
	return number + "^" + namespace
}

// sameOrder reports whether key (number^namespace) names the order with
// identity have: the numbers must be equal, and the namespaces too when
// both are known (a result may leave the placer's namespace out).
func sameOrder(have, key string) bool {
	if have == "" || key == "" {
		return false
	}
	hn, hns, _ := strings.Cut(have, "^")
	kn, kns, _ := strings.Cut(key, "^")
	return hn == kn && (hns == "" || kns == "" || hns == kns)
}

// Knows reports whether p has an order numbered n (number^namespace),
// as placer or filler number.
func (p *Patient) Knows(n string) bool {
	return slices.ContainsFunc(p.Orders, func(o Order) bool { return sameOrder(o.Placer, n) || sameOrder(o.Filler, n) })
}

func (p *Patient) find(placer, filler string) int {
	for i, o := range p.Orders {
		if sameOrder(o.Placer, placer) || sameOrder(o.Filler, filler) {
			return i
		}
	}
	return -1
}

// Kind is what a message is to the lifecycle.
type Kind int

const (
	KindNone     Kind = iota // not about orders
	KindOrder                // the placer's order message (ORM^O01, OML^O21, OMG, ...)
	KindResponse             // the filler's answer (ORR^O02, ORL^O22, ...)
	KindResult               // a result (ORU^R01, OUL, ...)
)

// KindOf classifies ev by its message type.
func KindOf(ev *avro.ClinicalEvent) Kind {
	switch ev.MessageType {
	case "ORM", "OML", "OMG", "OMI", "OMD", "OMS", "OMN", "OMP", "RDE":
		return KindOrder
	case "ORR", "ORL", "ORG", "ORI", "ORD", "ORS", "ORN", "ORP", "RRE":
		return KindResponse
	case "ORU", "OUL":
		return KindResult
	}
	return KindNone
}

// Apply returns what ev does to p and changes p accordingly. now stamps
// the transitions.
func Apply(p *Patient, ev *avro.ClinicalEvent, now time.Time) Outcome {
	var out Outcome
	kind := KindOf(ev)
	if kind == KindNone {
		return out
	}
	for i := range ev.Orders {
		o := &ev.Orders[i]
		placer, filler := ei(o.PlacerOrderNumber, o.PlacerNamespace), ei(o.FillerOrderNumber, o.FillerNamespace)
		at := p.find(placer, filler)
		switch kind {
		case KindOrder:
			out.add(p.order(ev, o, at, placer, filler, now))
		case KindResponse:
			out.add(p.response(ev, o, at, placer, filler, now))
		case KindResult:
			out.add(p.result(ev, i, at, placer, filler, now))
		}
		if at := p.find(placer, filler); at >= 0 && out.Correlation == "" {
			out.Correlation = p.Orders[at].CorrelationID
		}
	}
	for _, x := range out.Exceptions {
		if !x.Deliver {
			out.Hold = true
		}
	}
	return out
}

func (out *Outcome) add(t *Transition, x *Exception) {
	if t != nil {
		out.Transitions = append(out.Transitions, *t)
	}
	if x != nil {
		out.Exceptions = append(out.Exceptions, *x)
	}
}

// move puts order at in state s because of ev, and returns the transition.
func (p *Patient) move(at int, s string, ev *avro.ClinicalEvent, now time.Time) *Transition {
	o := &p.Orders[at]
	from := o.State
	o.State, o.MessageID, o.Updated = s, ev.EventID, now.UTC()
	return &Transition{Order: *o, From: from}
}

// order applies the placer's order message: NW (or no control) places an
// order; CA, OC, CR or DC cancel it.
func (p *Patient) order(ev *avro.ClinicalEvent, o *avro.Order, at int, placer, filler string, now time.Time) (*Transition, *Exception) {
	if placer == "" {
		return nil, nil // an order message without a placer number cannot be tracked
	}
	switch o.Control {
	case "", "NW", "SN":
		if at >= 0 {
			return nil, nil // placed before: a resend, or a replay
		}
		p.Orders = append(p.Orders, Order{Placer: placer, Filler: filler, State: Placed, CorrelationID: ev.CorrelationID,
			MessageID: ev.EventID, Updated: now.UTC(), Interface: ev.Provenance.Interface, PlacedBy: ev.EventID,
			ControlID: ev.Provenance.ControlID})
		return &Transition{Order: p.Orders[len(p.Orders)-1]}, nil
	case "CA", "OC", "CR", "DC", "OD":
		if at < 0 {
			p.Orders = append(p.Orders, Order{Placer: placer, Filler: filler, CorrelationID: ev.CorrelationID, Interface: ev.Provenance.Interface})
			at = len(p.Orders) - 1
		}
		if p.Orders[at].State == Cancelled {
			return nil, nil
		}
		return p.move(at, Cancelled, ev, now), nil
	}
	return nil, nil
}

// response applies the filler's answer: ORC-1 OK accepts (and tells the
// filler number), UA or UC rejects, CA/OC/CR cancel; ORC-5 IP or SC says
// the work has started.
func (p *Patient) response(ev *avro.ClinicalEvent, o *avro.Order, at int, placer, filler string, now time.Time) (*Transition, *Exception) {
	if at < 0 {
		return nil, nil // an answer to an order careflow never saw placed
	}
	ord := &p.Orders[at]
	if filler != "" && ord.Filler == "" {
		ord.Filler = filler
	}
	if !Open(ord.State) {
		return nil, nil
	}
	switch {
	case o.Control == "UA":
		// Unable to accept. UC, UX and UM refuse a later request (to
		// cancel, change, replace): the order itself still stands.
		t := p.move(at, Rejected, ev, now)
		return t, &Exception{Code: OrderRejected, Order: ord.Placer, Filler: ord.Filler, Deliver: true,
			Reason: fmt.Sprintf("the filler rejected order %s (ORC-1 UA)", ord.Placer), Detail: answerText(ev.Acknowledgment)}
	case o.Control == "CA" || o.Control == "OC" || o.Control == "CR" || o.Control == "OD" || o.Control == "DR":
		return p.move(at, Cancelled, ev, now), nil
	case o.Status == "IP" || o.Status == "SC":
		if rank[ord.State] < rank[InProgress] {
			return p.move(at, InProgress, ev, now), nil
		}
	case o.Control == "OK" || o.Control == "" || o.Control == "NA":
		if rank[ord.State] < rank[Accepted] {
			return p.move(at, Accepted, ev, now), nil
		}
	}
	return nil, nil
}

// resultState is the state a result's OBR-25 puts its order in ("" when
// it says nothing the lifecycle tracks).
func resultState(o *avro.Order) string {
	switch o.ResultStatus {
	case "I", "S":
		return InProgress // specimen in lab, or scheduled: no results yet
	case "P", "R", "A":
		return Preliminary
	case "F":
		return Final
	case "C":
		return Corrected
	case "X":
		return Cancelled
	}
	if o.Status == "IP" || o.Status == "SC" {
		return InProgress
	}
	return ""
}

// result applies one OBR of a result message, the order's i-th.
func (p *Patient) result(ev *avro.ClinicalEvent, i, at int, placer, filler string, now time.Time) (*Transition, *Exception) {
	o := &ev.Orders[i]
	if placer == "" && filler == "" {
		return nil, &Exception{Code: ResultForUnknownOrder, Deliver: true,
			Reason: "the result names no placer or filler order number (ORC-2/3, OBR-2/3)"}
	}
	name := placer
	if name == "" {
		name = filler
	}
	if at < 0 {
		return nil, &Exception{Code: ResultForUnknownOrder, Order: name, Filler: filler, Deliver: true,
			Reason: fmt.Sprintf("no order %s was placed through careflow for this patient", name)}
	}
	ord := &p.Orders[at]
	if filler != "" && ord.Filler == "" {
		ord.Filler = filler
	}
	to := resultState(o)
	switch {
	case to == "":
		return nil, nil
	case ord.State == Cancelled:
		return nil, &Exception{Code: ResultAfterCancel, Order: ord.Placer, Filler: ord.Filler, Deliver: true,
			Reason: fmt.Sprintf("a %s result for order %s, which was cancelled", to, ord.Placer)}
	case ord.State == Rejected:
		return nil, &Exception{Code: ResultAfterCancel, Order: ord.Placer, Filler: ord.Filler, Deliver: true,
			Reason: fmt.Sprintf("a %s result for order %s, which the filler rejected", to, ord.Placer)}
	case to == Cancelled:
		return p.move(at, Cancelled, ev, now), nil
	}
	hash := observationsHash(ev, i)
	switch {
	case to == Final && (ord.State == Final || ord.State == Corrected):
		if ord.FinalHash == hash {
			return nil, nil // the same final again: a resend
		}
		if ord.FinalHash == "" {
			// Rebuilt from careflow.orders, which does not keep values:
			// the first final seen again is taken for the one recorded.
			ord.FinalHash = hash
			return nil, nil
		}
		return nil, &Exception{Code: ConflictingFinal, Order: ord.Placer, Filler: ord.Filler,
			Reason: fmt.Sprintf("a second final result for order %s with different values and no correction (OBR-25 C): not delivered", ord.Placer)}
	case rank[to] < rank[ord.State]:
		return nil, &Exception{Code: StatusRegressed, Order: ord.Placer, Filler: ord.Filler,
			Reason: fmt.Sprintf("a %s result for order %s, which is already %s: not delivered", to, ord.Placer, ord.State)}
	case to == ord.State && to != Corrected:
		return nil, nil // another preliminary: no new state
	}
	if to == Final || to == Corrected {
		ord.FinalHash = hash
	}
	return p.move(at, to, ev, now), nil
}

// observationsHash fingerprints the observations of the event's i-th
// order, to tell a resent final from a different one.
func observationsHash(ev *avro.ClinicalEvent, i int) string {
	var parts []string
	for _, ob := range ev.Observations {
		if ob.OrderIndex == i {
			parts = append(parts, strings.Join([]string{ob.Code, ob.CodingSystem, ob.Value, ob.Units, ob.AbnormalFlags}, "\x1f"))
		}
	}
	slices.Sort(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x1e")))
	return hex.EncodeToString(sum[:8])
}

// Delivery is deliver's final word on one message to one destination
// (a DeliveryOutcome): delivered with the destination's ACK code, or
// rejected.
type Delivery struct {
	MessageID   string
	Destination string
	Delivered   bool   // false: rejected (AE, AR, HTTP 4xx)
	AckCode     string // AA, CA, ... ("" over HTTP)
	Reason      string // careflow's words for a rejection
	Detail      string // the destination's own words (Exception.Detail)
}

// answerText is what an answer says in its sender's words: MSA-3, then
// each ERR-8.
func answerText(a *avro.Acknowledgment) string {
	if a == nil {
		return ""
	}
	parts := []string{}
	if a.Text != "" {
		parts = append(parts, a.Text)
	}
	for _, e := range a.Errors {
		if e.Text != "" {
			parts = append(parts, e.Text)
		}
	}
	return strings.Join(parts, "; ")
}

// ApplyDelivery moves the orders the delivered message placed: to sent
// once a destination has it, and on to accepted when its answer was AA
// (in HL7's original mode the receiving application's acceptance; a CA
// only says it is stored). A rejected delivery rejects the order.
func ApplyDelivery(p *Patient, d Delivery, now time.Time) Outcome {
	var out Outcome
	for i := range p.Orders {
		o := &p.Orders[i]
		if o.PlacedBy != d.MessageID || d.MessageID == "" || !Open(o.State) {
			continue
		}
		out.Correlation = o.CorrelationID
		move := func(s string) {
			from := o.State
			o.State, o.Updated = s, now.UTC()
			out.Transitions = append(out.Transitions, Transition{Order: *o, From: from})
		}
		switch {
		case !d.Delivered:
			move(Rejected)
			out.Exceptions = append(out.Exceptions, Exception{Code: OrderRejected, Order: o.Placer, Filler: o.Filler, Deliver: true,
				Reason: fmt.Sprintf("%s rejected order %s: %s", d.Destination, o.Placer, d.Reason), Detail: d.Detail})
		default:
			if o.State == Placed {
				move(Sent)
			}
			if d.AckCode == "AA" && rank[o.State] < rank[Accepted] {
				move(Accepted)
			}
		}
	}
	return out
}

// Retention bounds one patient's orders: a closed order (final,
// corrected, cancelled, rejected) is forgotten this long after its last
// transition, and at most MaxOrders are kept, the oldest closed ones going
// first. A result for a forgotten order is then a result for an unknown
// one. Without the bound a long-stay patient's entry would outgrow Kafka's
// record limit, and route would stop on it.
const (
	Retention = 90 * 24 * time.Hour
	MaxOrders = 200
)

func closed(s string) bool { return s == Final || s == Corrected || s == Cancelled || s == Rejected }

// Prune applies Retention and MaxOrders to p.
func (p *Patient) Prune(now time.Time) {
	p.Orders = slices.DeleteFunc(p.Orders, func(o Order) bool { return closed(o.State) && now.Sub(o.Updated) > Retention })
	for len(p.Orders) > MaxOrders {
		i := slices.IndexFunc(p.Orders, func(o Order) bool { return closed(o.State) })
		if i < 0 {
			i = 0 // all open: the oldest goes
		}
		p.Orders = slices.Delete(p.Orders, i, i+1)
	}
}

// Replay folds one recorded transition (careflow.orders) into p: how the
// order state is rebuilt when its changelog is gone. What transitions do
// not record (the final result's values) is learnt again from the next
// final.
func Replay(p *Patient, x *avro.OrderTransition) {
	i := slices.IndexFunc(p.Orders, func(o Order) bool { return o.Placer == x.PlacerOrder })
	if i < 0 {
		p.Orders = append(p.Orders, Order{Placer: x.PlacerOrder, CorrelationID: x.CorrelationID, Interface: x.Interface})
		i = len(p.Orders) - 1
	}
	o := &p.Orders[i]
	if x.State == Placed && x.FromState == "" {
		o.PlacedBy, o.Interface = x.MessageID, x.Interface
	}
	if x.FillerOrder != "" {
		o.Filler = x.FillerOrder
	}
	o.State, o.MessageID, o.Updated = x.State, x.MessageID, x.At
}
