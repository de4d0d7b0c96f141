// This file tracks the order lifecycle (stages/lifecycle) on the way
// through route: transitions on careflow.orders, exceptions on
// careflow.exceptions, results joined to their order's journey, and a
// result that would overwrite a better one held back.

package route

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// tracked is what the lifecycle made of one event: the records to write
// (state change, transitions, exceptions), whether the event is held back,
// and its value re-encoded when it joined its order's journey.
type tracked struct {
	outs   []stages.Envelope
	change *stages.Change // the patient's new orders, applied by Process with its outputs
	hold   bool
	value  []byte // nil: unchanged
}

// track applies ev to its patient's orders. ev's CorrelationID becomes its
// order's when it names a known order.
func (s *Stage) track(in stages.Envelope, ev *avro.ClinicalEvent, h stages.Headers, now time.Time) (tracked, error) {
	var tr tracked
	key := string(in.Key)
	if s.orders == nil || lifecycle.KindOf(ev) == lifecycle.KindNone || key == "" || key == ev.IdempotencyKey {
		// Keyed by its idempotency key, the message names no patient (an
		// ORR without PID, say): it lands on another partition than its
		// order's, so it can neither find nor move it.
		return tr, nil
	}
	var p lifecycle.Patient
	before, found := s.orders.Get(in.Partition, key)
	if found {
		if err := json.Unmarshal(before, &p); err != nil {
			p = lifecycle.Patient{} // careflow's own entry unreadable: start the patient afresh
		}
	}
	out := lifecycle.Apply(&p, ev, now)
	p.Prune(now)
	after, err := json.Marshal(&p)
	if err != nil {
		return tr, err
	}
	if (found || len(p.Orders) > 0) && !bytes.Equal(before, after) {
		c := s.orders.Change(in.Partition, key, after, h.Clone())
		tr.change = &c
		tr.outs = append(tr.outs, c.Record)
	}
	if out.Correlation != "" && out.Correlation != ev.CorrelationID {
		ev.CorrelationID = out.Correlation
		h = h.Clone()
		h.Set(topics.HeaderCorrelationID, out.Correlation)
		if tr.value, err = s.serde.Encode(ev); err != nil {
			return tr, stages.Transient(CodeEncode, fmt.Errorf("encode event joined to its order: %w", err))
		}
	}
	for _, t := range out.Transitions {
		rec := &avro.OrderTransition{
			TransitionID: identity.OutcomeID(ev.EventID, "order", t.Order.Placer, t.Order.State),
			PlacerOrder:  t.Order.Placer, FillerOrder: t.Order.Filler, PatientKey: key,
			FromState: t.From, State: t.Order.State, MessageID: ev.EventID, CorrelationID: t.Order.CorrelationID,
			Interface: ev.Provenance.Interface, MessageType: ev.MessageType, TriggerEvent: ev.TriggerEvent, At: now.UTC(),
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
			ExceptionID: identity.OutcomeID(ev.EventID, "exception", x.Code, x.Order),
			Code:        x.Code, Stage: topics.StageRoute, Interface: ev.Provenance.Interface,
			MessageID: ev.EventID, CorrelationID: ev.CorrelationID, ControlID: ev.Provenance.ControlID,
			PatientKey: key, PlacerOrder: x.Order, FillerOrder: x.Filler, Reason: x.Reason, Action: action, At: now.UTC(),
		}
		b, err := s.serde.Encode(rec)
		if err != nil {
			return tr, stages.Transient(CodeEncode, fmt.Errorf("encode %s exception: %w", x.Code, err))
		}
		tr.outs = append(tr.outs, stages.Envelope{Topic: topics.Exceptions, Key: in.Key, Value: b, Headers: h.Clone()})
		s.metrics.exceptions.WithLabelValues(x.Code).Inc()
	}
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
