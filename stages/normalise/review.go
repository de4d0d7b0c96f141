// This file holds a message for review: instead of its event, normalise
// writes a pending item on careflow.review (with the raw record, so an
// approval can send it back through normalise) and an Exception saying
// why, with action held. A message a person approved comes back with
// topics.HeaderReviewID and is not held again.

package normalise

import (
	"fmt"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/review"
	"github.com/careflow-health/careflow/topics"
)

// CodeFieldReview is the hold of an update the source-of-truth matrix
// sends to a person (others: review).
const CodeFieldReview = "field_review"

// hold returns the records that hold in for review for code at location.
func (s *Stage) hold(in stages.Envelope, raw *avro.RawMessage, key []byte, code, location, reason string, h stages.Headers, now time.Time) ([]stages.Envelope, error) {
	item, err := s.holdItem(in, raw, key, code, location, reason, h, now)
	if err != nil {
		return nil, err
	}
	x := review.Hold(avro.Review{MessageID: raw.MessageID, Code: code}, in, now)
	e := &avro.Exception{
		ExceptionID: identity.OutcomeID(raw.MessageID, "exception", code, location),
		Code:        code, Stage: topics.StageNormalise, Interface: raw.Interface,
		MessageID: raw.MessageID, CorrelationID: raw.CorrelationID, ControlID: raw.ControlID, PatientKey: string(key),
		Reason: reason + fmt.Sprintf("; held for review %s (careflow review show %s)", x.ReviewID, x.ReviewID),
		Action: avro.ActionHeld, At: now.UTC(), Location: location, ReviewID: x.ReviewID,
	}
	b, err := s.serde.Encode(e)
	if err != nil {
		return nil, stages.Transient(CodeEncode, fmt.Errorf("normalise: interface %s: encode exception: %w", raw.Interface, err))
	}
	s.exceptions.WithLabelValues(code).Inc()
	return []stages.Envelope{item, {Topic: topics.Exceptions, Key: key, Value: b, Headers: h.Clone()}}, nil
}

// holdItem is the pending review item holding in for code.
func (s *Stage) holdItem(in stages.Envelope, raw *avro.RawMessage, key []byte, code, location, reason string, h stages.Headers, now time.Time) (stages.Envelope, error) {
	x := review.Hold(avro.Review{
		Code: code, Stage: topics.StageNormalise, Reason: reason, Location: location,
		Interface: raw.Interface, MessageID: raw.MessageID, CorrelationID: raw.CorrelationID, ControlID: raw.ControlID,
		MessageType: raw.MessageType + "^" + raw.TriggerEvent, PatientKey: string(key),
	}, in, now)
	s.held.WithLabelValues(code).Inc()
	return review.Record(s.serde, &x, h)
}

// approvedFor is whether a person approved the hold with a code, as the
// record's headers say: each approval lets the message past the one hold
// that was reviewed, and no other.
func approvedFor(h stages.Headers) func(code string) bool {
	id, approved := h.Get(topics.HeaderReviewID), h.Get(topics.HeaderReviewCode)
	return func(code string) bool { return id != "" && approved == code }
}
