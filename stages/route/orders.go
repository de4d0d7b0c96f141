// This file tracks the order lifecycle (stages/lifecycle) on the way
// through route: transitions on careflow.orders, exceptions on
// careflow.exceptions, results joined to their order's journey, a result
// that would overwrite a better one held back, and deliver's outcomes
// (careflow.outcomes, route's second input) moving orders to sent and
// accepted.

package route

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/stages/orderindex"
	"github.com/careflow-health/careflow/topics"
)

// tracked is what the lifecycle made of one record: the records to write
// (transitions, exceptions, notifications, a held outcome), whether an
// event is held back and why, whether it placed an order (results waiting
// for it are then released), and its value re-encoded when it joined its
// order's journey.
type tracked struct {
	outs                 []stages.Envelope
	hold                 bool
	holdCode, holdReason string
	placed               []string // the orders it placed (number^namespace)
	learnt               bool     // it told the filler number of an order
	value                []byte   // nil: unchanged
}

// about is the message a lifecycle record is about.
type about struct {
	messageID, correlationID, controlID, iface, messageType, trigger string
}

// record builds the outputs of one lifecycle outcome: a transition record
// each, an exception record each, and the return notification of each
// exception the placer must see. ev is the message that made them, when
// it is an event.
func (s *Stage) record(ks *keyState, in stages.Envelope, ev *avro.ClinicalEvent, out lifecycle.Outcome,
	m about, h stages.Headers, now time.Time) ([]stages.Envelope, error) {
	var outs []stages.Envelope
	for _, t := range out.Transitions {
		rec := &avro.OrderTransition{
			TransitionID: identity.OutcomeID(m.messageID, "order", t.Order.Placer, t.Order.State),
			PlacerOrder:  t.Order.Placer, FillerOrder: t.Order.Filler, PatientKey: ks.key,
			FromState: t.From, State: t.Order.State, MessageID: m.messageID, CorrelationID: t.Order.CorrelationID,
			Interface: m.iface, MessageType: m.messageType, TriggerEvent: m.trigger, At: now.UTC(),
		}
		b, err := s.serde.Encode(rec)
		if err != nil {
			return nil, stages.Transient(CodeEncode, fmt.Errorf("encode order transition: %w", err))
		}
		outs = append(outs, stages.Envelope{Topic: topics.Orders, Key: in.Key, Value: b, Headers: h.Clone()})
		s.metrics.orders.WithLabelValues(t.Order.State).Inc()
		if t.From == "" && t.Order.State == lifecycle.Placed {
			// One patient's number: the order index (by number) sees
			// every patient that claims it.
			c, err := orderindex.ClaimRecord(orderindex.Claim{Order: t.Order.Placer, PatientKey: ks.key, MessageID: m.messageID,
				CorrelationID: t.Order.CorrelationID, ControlID: m.controlID, Interface: m.iface, At: now.UTC()}, h.Clone())
			if err != nil {
				return nil, err
			}
			outs = append(outs, c)
		}
	}
	for _, x := range out.Exceptions {
		action := avro.ActionDelivered
		if out.Hold {
			action = avro.ActionNotDelivered
		}
		rec := &avro.Exception{
			ExceptionID: identity.OutcomeID(m.messageID, "exception", x.Code, x.Order),
			Code:        x.Code, Stage: topics.StageRoute, Interface: m.iface,
			MessageID: m.messageID, CorrelationID: m.correlationID, ControlID: m.controlID,
			PatientKey: ks.key, PlacerOrder: x.Order, FillerOrder: x.Filler, Reason: x.Reason, Action: action, At: now.UTC(),
		}
		b, err := s.serde.Encode(rec)
		if err != nil {
			return nil, stages.Transient(CodeEncode, fmt.Errorf("encode %s exception: %w", x.Code, err))
		}
		outs = append(outs, stages.Envelope{Topic: topics.Exceptions, Key: in.Key, Value: b, Headers: h.Clone()})
		s.metrics.exceptions.WithLabelValues(x.Code).Inc()
		n, err := s.notify(ks, ev, m.messageID, x, now)
		if err != nil {
			return nil, err
		}
		outs = append(outs, n...)
	}
	return outs, nil
}

// tracks reports whether a record keyed in.Key can be tracked: it must
// name a patient. Keyed by its idempotency key (an ORR without PID, say),
// a message lands on another partition than its order's, so it can
// neither find nor move it.
func (s *Stage) tracks(in stages.Envelope, idempotencyKey string) bool {
	key := string(in.Key)
	return s.orders != nil && key != "" && key != idempotencyKey
}

// track applies ev to its patient's orders in ks. ev's CorrelationID
// becomes its order's when it names a known one. pol is ev's interface's:
// with unknown_order: hold, a result for an unknown order is held.
func (s *Stage) track(in stages.Envelope, ev *avro.ClinicalEvent, ks *keyState, h stages.Headers, now time.Time, pol Policy) (tracked, error) {
	kind := lifecycle.KindOf(ev)
	if ks == nil || !s.tracks(in, ev.IdempotencyKey) || kind == lifecycle.KindNone {
		return tracked{}, nil
	}
	fillersBefore := 0
	for _, o := range ks.e.Orders {
		if o.Filler != "" {
			fillersBefore++
		}
	}
	out := lifecycle.Apply(&ks.e.Patient, ev, now)
	if pol.HoldUnknown {
		for i := range out.Exceptions {
			if out.Exceptions[i].Code == lifecycle.ResultForUnknownOrder {
				out.Exceptions[i].Deliver = false
				out.Hold = true
			}
		}
	}
	var tr tracked
	if out.Correlation != "" && out.Correlation != ev.CorrelationID {
		ev.CorrelationID = out.Correlation
		h = h.Clone()
		h.Set(topics.HeaderCorrelationID, out.Correlation)
		var err error
		if tr.value, err = s.serde.Encode(ev); err != nil {
			return tracked{}, stages.Transient(CodeEncode, fmt.Errorf("encode event joined to its order: %w", err))
		}
	}
	fillers := 0
	for _, o := range ks.e.Orders {
		if o.Filler != "" {
			fillers++
		}
	}
	for _, t := range out.Transitions {
		if t.From == "" && t.Order.State == lifecycle.Placed {
			tr.placed = append(tr.placed, t.Order.Placer)
		}
	}
	tr.learnt = fillers > fillersBefore
	m := about{ev.EventID, ev.CorrelationID, ev.Provenance.ControlID, ev.Provenance.Interface, ev.MessageType, ev.TriggerEvent}
	outs, err := s.record(ks, in, ev, out, m, h, now)
	if err != nil {
		return tr, err
	}
	tr.outs = outs
	if out.Hold {
		x := out.Exceptions[0]
		for _, e := range out.Exceptions {
			if !e.Deliver {
				x = e
				break
			}
		}
		tr.hold, tr.holdCode, tr.holdReason = true, x.Code, x.Reason
		o := s.outcome(ev, now)
		o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, avro.StatusHeld)
		o.Status = avro.StatusHeld
		o.ErrorCode, o.ErrorText = x.Code, x.Reason
		env, err := s.outcomeEnvelope(in, h.Clone(), o)
		if err != nil {
			return tr, err
		}
		tr.outs = append(tr.outs, env)
	}
	return tr, nil
}

// delivered applies one of deliver's delivered outcomes
// (careflow.outcomes) to the orders its message placed and to the
// acknowledgement its sender awaits. A rejection comes as deliver's dead
// letter instead (rejectedBy), which carries the destination's own words.
// Every other outcome, route's own among them, is passed over by its
// status header without being decoded.
func (s *Stage) delivered(in stages.Envelope) ([]stages.Envelope, error) {
	if s.orders == nil || in.Headers.Get(topics.HeaderOutcomeStatus) != avro.StatusDelivered {
		return nil, nil
	}
	var o avro.DeliveryOutcome
	if err := s.serde.Decode(in.Value, &o); err != nil {
		return nil, stages.DecodeError(fmt.Errorf("decode DeliveryOutcome from %s: %w", in.Topic, err))
	}
	if lifecycle.KindOf(&avro.ClinicalEvent{MessageType: o.MessageType}) != lifecycle.KindOrder && !s.timers.awaitsReply(in.Partition, string(in.Key)) {
		// Neither an order that moves on, nor an acknowledgement
		// waiting: the key's entry need not be read.
		return nil, nil
	}
	d := lifecycle.Delivery{MessageID: o.MessageID, Destination: o.Destination, Delivered: true, AckCode: o.AckCode}
	a := destAnswer{Name: o.Destination, Code: "AA"}
	return s.answer(in, o.IdempotencyKey, d, a, about{o.MessageID, "", "", o.Interface, o.MessageType, o.TriggerEvent})
}

// rejectedBy applies deliver's dead letter of a message a destination
// rejected (careflow.deadletter.deliver): the orders it placed are
// rejected, and its sender's acknowledgement carries the destination's
// answer.
func (s *Stage) rejectedBy(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
	dest := in.Headers.Get(topics.HeaderDestination)
	if s.orders == nil || dest == "" {
		return nil, nil
	}
	var dl avro.DeadLetter
	if err := s.serde.DecodeContext(ctx, in.Value, &dl); err != nil {
		return nil, stages.DecodeError(fmt.Errorf("decode DeadLetter from %s: %w", in.Topic, err))
	}
	text := fmt.Sprintf("%s rejected it", dest)
	if dl.ErrorCode != "" {
		text = fmt.Sprintf("%s rejected it (%s)", dest, dl.ErrorCode)
	}
	d := lifecycle.Delivery{MessageID: dl.MessageID, Destination: dest, Reason: dl.ErrorText, Detail: dl.ErrorDetail}
	a := destAnswer{Name: dest, Code: "AE", Error: dl.ErrorCode, Location: dl.ErrorLocation, Text: text, Detail: dl.ErrorDetail}
	return s.answer(in, in.Headers.Get(topics.HeaderIdempotencyKey), d, a, about{dl.MessageID, "", "", dl.Interface, "", ""})
}

// answer applies a destination's answer d (a) to the orders and the
// acknowledgement of the key in.Key.
func (s *Stage) answer(in stages.Envelope, idempotencyKey string, d lifecycle.Delivery, a destAnswer, m about) ([]stages.Envelope, error) {
	ks := s.load(in.Partition, string(in.Key))
	if !ks.found {
		return nil, nil // nothing kept for this key: nothing to move
	}
	now := s.now()
	h := in.Headers.Derive(topics.StageRoute, now)
	var out []stages.Envelope
	if s.tracks(in, idempotencyKey) {
		lo := lifecycle.ApplyDelivery(&ks.e.Patient, d, now)
		// The outcome knows careflow's outbound control id, not the sender's.
		m.correlationID = lo.Correlation
		outs, err := s.record(ks, in, nil, lo, m, h, now)
		if err != nil {
			return nil, err
		}
		out = append(out, outs...)
	}
	acks, err := s.answered(ks, d.MessageID, a, now)
	if err != nil {
		return nil, err
	}
	out = append(out, acks...)
	kc, err := s.save(ks, h, now)
	if err != nil {
		return nil, err
	}
	if kc == nil {
		return out, nil
	}
	s.apply(kc)
	return append(out, kc.Record), nil
}

// RebuildOrders fills the order table, for partitions, with the patients
// whose state the changelog (careflow.state.orders) does not have but
// careflow.orders records: the state store was deleted, or lost. Call it
// after the table's Restore; a patient the changelog has is left as it is.
func (s *Stage) RebuildOrders(ctx context.Context, kafka []kgo.Opt, partitions []int32) error {
	if s.orders == nil {
		return nil
	}
	rebuilt := map[int32]map[string]*lifecycle.Patient{}
	var bad error
	err := stages.ReadToEnd(ctx, kafka, topics.Orders, partitions, kgo.NewOffset().AtStart(), func(r *kgo.Record) {
		if _, ok := s.orders.Get(r.Partition, string(r.Key)); ok {
			return
		}
		var x avro.OrderTransition
		if err := s.serde.DecodeContext(ctx, r.Value, &x); err != nil {
			bad = err
			return
		}
		if rebuilt[r.Partition] == nil {
			rebuilt[r.Partition] = map[string]*lifecycle.Patient{}
		}
		p := rebuilt[r.Partition][string(r.Key)]
		if p == nil {
			p = &lifecycle.Patient{}
			rebuilt[r.Partition][string(r.Key)] = p
		}
		lifecycle.Replay(p, &x)
	})
	if err != nil {
		return fmt.Errorf("rebuild orders from %s: %w", topics.Orders, err)
	}
	if bad != nil {
		return fmt.Errorf("rebuild orders from %s: %w", topics.Orders, bad)
	}
	for part, patients := range rebuilt {
		for key, p := range patients {
			b, err := json.Marshal(p)
			if err != nil {
				return err
			}
			s.orders.Seed(part, key, b)
		}
	}
	return nil
}
