// This file lets a result wait for its order: results can overtake the
// orders they answer (the placer's interface is slower, or down), and the
// placer interface's correlation_wait says how long such a result is kept
// back, in the key's state, before it counts as a result for an unknown
// order. Which interface an unknown order would come from is not known,
// so a result waits the longest correlation_wait configured.
// The order's arrival releases it at once, joined to the order's journey;
// the wait's end (Tick) releases it with the exception, delivered or held
// as the interface says.

package route

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// maxWaiting bounds the results one key keeps waiting: each holds its
// whole event.
const maxWaiting = 32

// waiting is a result kept back until its order is placed or Until.
type waiting struct {
	EventID string         `json:"event"`
	Orders  []string       `json:"orders"` // the order numbers it names that careflow did not know
	Value   []byte         `json:"value"`  // the event as route read it
	Headers stages.Headers `json:"headers"`
	Until   time.Time      `json:"until"`
}

// wait keeps ev back when it is a result naming an order ks does not know
// and some interface waits for its orders. ok says it was kept (or was already
// waiting); the outputs are then its held outcome.
func (s *Stage) wait(ks *keyState, in stages.Envelope, ev *avro.ClinicalEvent, h stages.Headers, now time.Time) ([]stages.Envelope, bool, error) {
	if ks == nil || s.maxWait <= 0 || lifecycle.KindOf(ev) != lifecycle.KindResult || !s.tracks(in, ev.IdempotencyKey) {
		return nil, false, nil
	}
	if slices.ContainsFunc(ks.e.Waiting, func(w waiting) bool { return w.EventID == ev.EventID }) {
		return nil, true, nil // a resend of a result already waiting
	}
	// Try the result on a copy: only its verdict is wanted here.
	trial := clonePatient(&ks.e.Patient)
	out := lifecycle.Apply(&trial, ev, now)
	var unknown []string
	for _, x := range out.Exceptions {
		if x.Code == lifecycle.ResultForUnknownOrder && x.Order != "" {
			unknown = append(unknown, x.Order)
		}
	}
	if len(unknown) == 0 {
		return nil, false, nil
	}
	ks.e.Waiting = append(ks.e.Waiting, waiting{EventID: ev.EventID, Orders: unknown, Value: in.Value,
		Headers: in.Headers.Clone(), Until: now.Add(s.maxWait)})
	if len(ks.e.Waiting) > maxWaiting {
		// A patient with this many results for orders careflow never
		// saw (placed outside it): the oldest waits no longer, so the
		// entry stays well inside Kafka's record limit.
		ks.e.Waiting[0].Until = now
	}
	env, err := s.heldOutcome(in, ev, h, CodeAwaiting,
		fmt.Sprintf("waiting up to %s for order %s, which careflow has not seen placed", s.maxWait, unknown[0]), now)
	if err != nil {
		return nil, true, err
	}
	return []stages.Envelope{env}, true, nil
}

// heldOutcome is the outcome of an event route keeps back for now, with
// code and text saying why: its id names the code, so each reason a
// message is held is one outcome however often it is replayed.
func (s *Stage) heldOutcome(in stages.Envelope, ev *avro.ClinicalEvent, h stages.Headers, code, text string, now time.Time) (stages.Envelope, error) {
	o := s.outcome(ev, now)
	o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, avro.StatusHeld, code)
	o.Status = avro.StatusHeld
	o.ErrorCode, o.ErrorText = code, text
	return s.outcomeEnvelope(in, h.Clone(), o)
}

func clonePatient(p *lifecycle.Patient) lifecycle.Patient {
	return lifecycle.Patient{Orders: slices.Clone(p.Orders)}
}

// releaseFor routes, in the order they arrived, the waiting results of ks
// that name an order ks now knows.
func (s *Stage) releaseFor(ctx context.Context, ks *keyState, now time.Time) ([]stages.Envelope, error) {
	if ks == nil || len(ks.e.Waiting) == 0 {
		return nil, nil
	}
	var ready, kept []waiting
	for _, w := range ks.e.Waiting {
		if slices.ContainsFunc(w.Orders, func(n string) bool { return ks.e.Knows(n) }) {
			ready = append(ready, w)
		} else {
			kept = append(kept, w)
		}
	}
	ks.e.Waiting = kept
	return s.release(ctx, ks, ready, now)
}

// release routes results that waited, as route would have on arrival had
// their orders been known.
func (s *Stage) release(ctx context.Context, ks *keyState, ws []waiting, now time.Time) ([]stages.Envelope, error) {
	var out []stages.Envelope
	for _, w := range ws {
		in := stages.Envelope{Topic: topics.Events, Partition: ks.partition, Key: []byte(ks.key), Value: w.Value, Headers: w.Headers}
		var ev avro.ClinicalEvent
		if err := s.serde.DecodeContext(ctx, w.Value, &ev); err != nil {
			// It decoded when it arrived; a registry that cannot resolve
			// it now is careflow's fault: try again later.
			return nil, stages.Transient(stages.CodeSchemaUnavailable, fmt.Errorf("decode waiting result %s: %w", w.EventID, err))
		}
		outs, err := s.dispatch(ctx, in, &ev, ks, w.Headers.Derive(topics.StageRoute, now), now, true)
		if err != nil {
			return nil, err
		}
		out = append(out, outs...)
	}
	return out, nil
}

// Tick implements stages.Ticker: results whose correlation_wait is over
// are routed as results for unknown orders, acknowledgements whose
// reply_timeout is over are sent as AE, held ADT messages whose hold is
// over are routed in event-time order, and orders past their route's
// expectation raise late_acceptance or late_result.
func (s *Stage) Tick(ctx context.Context, now time.Time) ([]stages.Envelope, error) {
	if s.orders == nil {
		return nil, nil
	}
	var out []stages.Envelope
	var changes []*stages.Change
	for _, d := range s.timers.dueBy(now) {
		outs, kc, err := s.tickKey(ctx, d, now)
		if err != nil {
			if ctx.Err() == nil {
				// This key is tried again in a while; the transaction
				// (every key's work this tick) is aborted and redone.
				s.timers.postpone(d.p, d.key, now.Add(tickBackoff))
			}
			return nil, fmt.Errorf("timers of key %q on partition %d: %w", d.key, d.p, err)
		}
		out = append(out, outs...)
		if kc != nil {
			changes = append(changes, kc)
		}
	}
	s.apply(changes...)
	return out, nil
}

// tickBackoff is how long a key whose due work failed waits before its
// next try.
const tickBackoff = 30 * time.Second

// tickKey does the work due at now for one key; kc is its entry's change.
func (s *Stage) tickKey(ctx context.Context, d dueKey, now time.Time) (out []stages.Envelope, kc *stages.Change, err error) {
	{
		ks := s.load(d.p, d.key)
		var due, kept []waiting
		for _, w := range ks.e.Waiting {
			if now.Before(w.Until) {
				kept = append(kept, w)
			} else {
				due = append(due, w)
			}
		}
		ks.e.Waiting = kept
		outs, err := s.release(ctx, ks, due, now)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, outs...)
		acks, err := s.expireReplies(ks, now)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, acks...)
		adts, err := s.releaseHeld(ctx, ks, now)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, adts...)
		late, err := s.overdue(ks, now)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, late...)
		var h stages.Headers
		h.Set(topics.StageTime(topics.StageRoute), now.UTC().Format(topics.TimeFormat))
		kc, err := s.save(ks, h, now)
		if err != nil {
			return nil, nil, err
		}
		if kc == nil {
			// Nothing was due after all: the index was behind the
			// committed table. Put it right.
			s.timers.repair(d.p, d.key, ks.e.due(), len(ks.e.Replies) > 0)
			return out, nil, nil
		}
		return append(out, kc.Record), kc, nil
	}
}
