// This file re-sequences an interface's ADT messages (out_of_order: hold):
// a sender whose retry queue or parallel connections deliver a patient's
// updates out of order gets them put back in event-time order, instead of
// the later-arriving older update being refused as stale_update. Every
// ADT message with a patient key from such an interface waits the hold in
// the key's state; when one falls due, it and every held message of the
// patient that happened before it are sequenced and routed, oldest first.
// A message overtaken by more than the hold is still refused: the newer
// one has gone out by then.

package route

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// CodeResequencing is the held outcome of an ADT message waiting to be
// put in event-time order.
const CodeResequencing = "route.resequencing"

// maxHeld bounds the ADT messages one patient has held: each holds its
// whole event.
const maxHeld = 64

// heldADT is an ADT message waiting out its interface's hold.
type heldADT struct {
	EventID   string         `json:"event"`
	EventTime time.Time      `json:"event_time"`
	Value     []byte         `json:"value"`
	Headers   stages.Headers `json:"headers"`
	Until     time.Time      `json:"until"`
}

// holdBack keeps ev back when its interface re-sequences ADT: the outputs
// are its held outcome; nil when ev goes on now.
func (s *Stage) holdBack(ks *keyState, in stages.Envelope, ev *avro.ClinicalEvent, h stages.Headers, now time.Time) ([]stages.Envelope, error) {
	pol := s.policy(ev.Provenance.Interface)
	key := string(in.Key)
	if ks == nil || pol.Resequence <= 0 || ev.MessageType != "ADT" || key == "" || key == ev.IdempotencyKey {
		return nil, nil
	}
	at, ok, _ := eventTime(ev)
	if !ok {
		return nil, nil // nothing to order it by: on it goes
	}
	if slices.ContainsFunc(ks.e.Held, func(x heldADT) bool { return x.EventID == ev.EventID }) {
		return []stages.Envelope{}, nil // a resend of a message already held
	}
	ks.e.Held = append(ks.e.Held, heldADT{EventID: ev.EventID, EventTime: at.UTC(), Value: in.Value,
		Headers: in.Headers.Clone(), Until: now.Add(pol.Resequence)})
	if len(ks.e.Held) > maxHeld {
		// A burst for one patient: the oldest held goes at the next
		// tick, so the entry stays well inside Kafka's record limit.
		ks.e.Held[0].Until = now
	}
	env, err := s.heldOutcome(in, ev, h, CodeResequencing,
		fmt.Sprintf("held up to %s to be routed in event-time order with the patient's other ADT messages", pol.Resequence), now)
	if err != nil {
		return nil, err
	}
	return []stages.Envelope{env}, nil
}

// releaseHeld sequences and routes, oldest event first, every held ADT
// message of ks that happened no later than the latest one due at now.
// Each one's sequencing change is applied before the next is sequenced:
// this runs in a Tick, whose failure aborts every change it made.
func (s *Stage) releaseHeld(ctx context.Context, ks *keyState, now time.Time) ([]stages.Envelope, error) {
	var horizon time.Time
	for _, x := range ks.e.Held {
		if !now.Before(x.Until) && x.EventTime.After(horizon) {
			horizon = x.EventTime
		}
	}
	if horizon.IsZero() {
		return nil, nil
	}
	var ready, kept []heldADT
	for _, x := range ks.e.Held {
		if !x.EventTime.After(horizon) {
			ready = append(ready, x)
		} else {
			kept = append(kept, x)
		}
	}
	ks.e.Held = kept
	slices.SortStableFunc(ready, func(a, b heldADT) int { return cmp.Compare(a.EventTime.UnixNano(), b.EventTime.UnixNano()) })
	var out []stages.Envelope
	for _, x := range ready {
		in := stages.Envelope{Topic: topics.Events, Partition: ks.partition, Key: []byte(ks.key), Value: x.Value, Headers: x.Headers}
		var ev avro.ClinicalEvent
		if err := s.serde.DecodeContext(ctx, x.Value, &ev); err != nil {
			return nil, stages.Transient(stages.CodeSchemaUnavailable, fmt.Errorf("decode held ADT %s: %w", x.EventID, err))
		}
		outs, change, err := s.sequenced(ctx, in, &ev, ks, x.Headers.Derive(topics.StageRoute, now), now)
		if err != nil {
			return nil, err
		}
		s.apply(change)
		out = append(out, outs...)
	}
	return out, nil
}
