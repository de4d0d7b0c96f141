// This file tracks the order lifecycle (stages/lifecycle) on the way
// through route: transitions on careflow.orders, exceptions on
// careflow.exceptions, results joined to their order's journey, a result
// that would overwrite a better one held back, and deliver's outcomes
// (careflow.outcomes, route's second input) moving orders to sent and
// accepted.

package route

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// tracked is what the lifecycle made of one record: the records to write
// (state change, transitions, exceptions), whether an event is held back,
// and its value re-encoded when it joined its order's journey.
type tracked struct {
	outs   []stages.Envelope
	change *stages.Change // the patient's new orders, applied by Process with its outputs
	hold   bool
	value  []byte // nil: unchanged
}

// about is the message a lifecycle record is about.
type about struct {
	messageID, correlationID, controlID, iface, messageType, trigger string
}

// patientOrders is the patient's orders as the table holds them.
func (s *Stage) patientOrders(in stages.Envelope) (p lifecycle.Patient, raw []byte, found bool) {
	raw, found = s.orders.Get(in.Partition, string(in.Key))
	if found && json.Unmarshal(raw, &p) != nil {
		p = lifecycle.Patient{} // careflow's own entry unreadable: start the patient afresh
	}
	return p, raw, found
}

// record builds the outputs of one lifecycle outcome: the patient's new
// state when it changed, a transition record each, an exception record
// each; holdAction says what became of the message when one is held.
func (s *Stage) record(in stages.Envelope, p *lifecycle.Patient, before []byte, found bool, out lifecycle.Outcome,
	m about, h stages.Headers, now time.Time) (tracked, error) {
	var tr tracked
	key := string(in.Key)
	p.Prune(now)
	after, err := json.Marshal(p)
	if err != nil {
		return tr, err
	}
	if (found || len(p.Orders) > 0) && !bytes.Equal(before, after) {
		c := s.orders.Change(in.Partition, key, after, h.Clone())
		tr.change = &c
		tr.outs = append(tr.outs, c.Record)
	}
	for _, t := range out.Transitions {
		rec := &avro.OrderTransition{
			TransitionID: identity.OutcomeID(m.messageID, "order", t.Order.Placer, t.Order.State),
			PlacerOrder:  t.Order.Placer, FillerOrder: t.Order.Filler, PatientKey: key,
			FromState: t.From, State: t.Order.State, MessageID: m.messageID, CorrelationID: t.Order.CorrelationID,
			Interface: m.iface, MessageType: m.messageType, TriggerEvent: m.trigger, At: now.UTC(),
		}
		b, err := s.serde.Encode(rec)
		if err != nil {
			return tr, stages.Transient(CodeEncode, fmt.Errorf("encode order transition: %w", err))
		}
		tr.outs = append(tr.outs, stages.Envelope{Topic: topics.Orders, Key: in.Key, Value: b, Headers: h.Clone()})
		s.metrics.orders.WithLabelValues(t.Order.State).Inc()
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
			PatientKey: key, PlacerOrder: x.Order, FillerOrder: x.Filler, Reason: x.Reason, Action: action, At: now.UTC(),
		}
		b, err := s.serde.Encode(rec)
		if err != nil {
			return tr, stages.Transient(CodeEncode, fmt.Errorf("encode %s exception: %w", x.Code, err))
		}
		tr.outs = append(tr.outs, stages.Envelope{Topic: topics.Exceptions, Key: in.Key, Value: b, Headers: h.Clone()})
		s.metrics.exceptions.WithLabelValues(x.Code).Inc()
	}
	return tr, nil
}

// tracks reports whether a record keyed in.Key can be tracked: it must
// name a patient. Keyed by its idempotency key (an ORR without PID, say),
// a message lands on another partition than its order's, so it can
// neither find nor move it.
func (s *Stage) tracks(in stages.Envelope, idempotencyKey string) bool {
	key := string(in.Key)
	return s.orders != nil && key != "" && key != idempotencyKey
}

// track applies ev to its patient's orders. ev's CorrelationID becomes its
// order's when it names a known order.
func (s *Stage) track(in stages.Envelope, ev *avro.ClinicalEvent, h stages.Headers, now time.Time) (tracked, error) {
	if !s.tracks(in, ev.IdempotencyKey) || lifecycle.KindOf(ev) == lifecycle.KindNone {
		return tracked{}, nil
	}
	p, before, found := s.patientOrders(in)
	out := lifecycle.Apply(&p, ev, now)
	var value []byte
	if out.Correlation != "" && out.Correlation != ev.CorrelationID {
		ev.CorrelationID = out.Correlation
		h = h.Clone()
		h.Set(topics.HeaderCorrelationID, out.Correlation)
		var err error
		if value, err = s.serde.Encode(ev); err != nil {
			return tracked{}, stages.Transient(CodeEncode, fmt.Errorf("encode event joined to its order: %w", err))
		}
	}
	m := about{ev.EventID, ev.CorrelationID, ev.Provenance.ControlID, ev.Provenance.Interface, ev.MessageType, ev.TriggerEvent}
	tr, err := s.record(in, &p, before, found, out, m, h, now)
	if err != nil {
		return tr, err
	}
	tr.value = value
	if out.Hold {
		tr.hold = true
		o := s.outcome(ev, now)
		o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, avro.StatusHeld)
		o.Status = avro.StatusHeld
		o.ErrorCode = out.Exceptions[0].Code
		o.ErrorText = out.Exceptions[0].Reason
		env, err := s.outcomeEnvelope(in, h.Clone(), o)
		if err != nil {
			return tr, err
		}
		tr.outs = append(tr.outs, env)
	}
	return tr, nil
}

// delivered applies one of deliver's final outcomes (careflow.outcomes) to
// the orders its message placed. Every other outcome, route's own among
// them, is passed over by its status header without being decoded.
func (s *Stage) delivered(in stages.Envelope) ([]stages.Envelope, error) {
	status := in.Headers.Get(topics.HeaderOutcomeStatus)
	if s.orders == nil || (status != avro.StatusDelivered && status != avro.StatusRejected) {
		return nil, nil
	}
	var o avro.DeliveryOutcome
	if err := s.serde.Decode(in.Value, &o); err != nil {
		return nil, stages.DecodeError(fmt.Errorf("decode DeliveryOutcome from %s: %w", in.Topic, err))
	}
	if !s.tracks(in, o.IdempotencyKey) {
		return nil, nil
	}
	p, before, found := s.patientOrders(in)
	if !found {
		return nil, nil // no orders for this patient: nothing to move
	}
	now := s.now()
	out := lifecycle.ApplyDelivery(&p, lifecycle.Delivery{MessageID: o.MessageID, Destination: o.Destination,
		Delivered: o.Status == avro.StatusDelivered, AckCode: o.AckCode, Reason: o.ErrorText}, now)
	if len(out.Transitions) == 0 {
		return nil, nil
	}
	h := in.Headers.Derive(topics.StageRoute, now)
	// The outcome knows careflow's outbound control id, not the sender's.
	m := about{o.MessageID, out.Correlation, "", o.Interface, o.MessageType, o.TriggerEvent}
	tr, err := s.record(in, &p, before, found, out, m, h, now)
	if err != nil {
		return nil, err
	}
	s.apply(tr.change)
	return tr.outs, nil
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
