// This file applies the source-of-truth matrix (stages/ownership,
// docs/ownership.md) to a mapped event: what the sending interface may not
// change is removed before the event is written, and each removal is a
// warning outcome on careflow.outcomes naming the field, never its value.

package normalise

import (
	"fmt"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/ownership"
	"github.com/careflow-health/careflow/topics"
)

// Outcome codes of the matrix. Each is a warning outcome whose
// error_location is the field (demographics.address, results).
const (
	// CodeFieldNotOwned: an interface that does not own the field sent it
	// under a strip rule. The field was removed; for a whole-message
	// domain (orders, results, appointments), the event was not delivered.
	CodeFieldNotOwned = "field_not_owned"
	// CodeFieldNotNewer: under a newer rule, the update was not newer than
	// the last one applied for the field, and was removed likewise.
	CodeFieldNotNewer = "field_not_newer"
)

// applyOwnership applies the matrix to ev, sent by raw.Interface, and
// returns what normalise writes: the event on careflow.events (unless a
// whole-message domain withholds it) followed by one warning outcome per
// field removed. d.Review names the fields a person must review (the
// caller holds the message); d.Applied and d.Fingerprints are what the
// patient index remembers of the fields the update applied. known is
// what the index knows of the patient's fields; nil knows nothing.
// Without a matrix the event is written as mapped.
func (s *Stage) applyOwnership(ev *avro.ClinicalEvent, raw *avro.RawMessage, key []byte, h stages.Headers, now time.Time, known ownership.Known) (outs []stages.Envelope, d ownership.Decision, err error) {
	d = s.ownership.ApplyKnown(ev, raw.Interface, known)
	if !d.Withheld {
		b, err := s.serde.Encode(ev)
		if err != nil {
			return nil, d, stages.Transient(CodeEncode, fmt.Errorf("normalise: interface %s: encode event: %w", raw.Interface, err))
		}
		outs = append(outs, stages.Envelope{Topic: topics.Events, Key: key, Value: b, Headers: h})
	}
	for _, x := range []struct {
		code   string
		fields []string
	}{{CodeFieldNotOwned, d.Stripped}, {CodeFieldNotNewer, d.Stale}} {
		for _, f := range x.fields {
			o, err := s.ownershipOutcome(ev, raw, key, h, now, x.code, f, d.Withheld)
			if err != nil {
				return nil, d, err
			}
			outs = append(outs, o)
		}
	}
	return outs, d, nil
}

// ownershipOutcome is the warning outcome of field removed under code.
// Its text names the field, the interfaces and the matrix's version: who
// to ask and which edition decided, never what the field held.
func (s *Stage) ownershipOutcome(ev *avro.ClinicalEvent, raw *avro.RawMessage, key []byte, h stages.Headers, now time.Time, code, field string, withheld bool) (stages.Envelope, error) {
	r, _ := s.ownership.Rule(field)
	what := "removed from the event; the rest is delivered"
	if withheld {
		what = "the event is not delivered"
	}
	text := fmt.Sprintf("%s is owned by %s (ownership version %s): %s sent it; %s",
		field, strings.Join(r.Owners, ", "), s.ownership.Version(), raw.Interface, what)
	if code == CodeFieldNotNewer {
		text = fmt.Sprintf("%s from %s is not newer than the last update applied (ownership version %s, newer: true): %s",
			field, raw.Interface, s.ownership.Version(), what)
	}
	o := &avro.DeliveryOutcome{
		OutcomeID:      identity.OutcomeID(raw.MessageID, topics.StageNormalise, avro.StatusWarning, code, field),
		MessageID:      raw.MessageID,
		CorrelationID:  raw.CorrelationID,
		IdempotencyKey: raw.IdempotencyKey,
		Interface:      raw.Interface,
		Stage:          topics.StageNormalise,
		Status:         avro.StatusWarning,
		ControlID:      raw.ControlID,
		ErrorCode:      code,
		ErrorLocation:  field,
		ErrorText:      text,
		MessageType:    ev.MessageType,
		TriggerEvent:   ev.TriggerEvent,
		IngestTime:     raw.ReceivedAt,
		At:             now.UTC(),
	}
	b, err := s.serde.Encode(o)
	if err != nil {
		return stages.Envelope{}, stages.Transient(CodeEncode, fmt.Errorf("normalise: interface %s: encode %s outcome: %w", raw.Interface, code, err))
	}
	return stages.Envelope{Topic: topics.Outcomes, Key: key, Value: b, Headers: h.Clone()}, nil
}
