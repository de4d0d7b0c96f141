// This file keeps an ADT update from overwriting a newer one downstream
// (issue 10): no silent last-update-wins.

package route

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// UpdateTriggers are the ADT events that replace what a receiver holds
// about a patient, so that an older one arriving after a newer one (a
// sender's retry queue, a replay) would overwrite newer data: A08 update
// patient information, A31 update person information.
var UpdateTriggers = map[string]bool{"A08": true, "A31": true}

// patientState is one patient's entry in the sequencing table (the
// topics.PatientState changelog, JSON): the newest event time of an ADT
// applied for the patient, and the message that carried it.
type patientState struct {
	EventTime time.Time `json:"event_time"`
	MessageID string    `json:"message_id"`
	Trigger   string    `json:"trigger"`
}

// eventTime is when an event happened, for ordering: EVN-2 (Provenance
// EventTime), else MSH-7 when EVN-2 is absent or malformed; false when
// neither reads as an HL7 time. fellBack says EVN-2 was there but not a
// time, which Process reports as a warning outcome.
func eventTime(ev *avro.ClinicalEvent) (t time.Time, ok, fellBack bool) {
	if t, err := hl7v2.ParseTime(ev.Provenance.EventTime); err == nil {
		return t, true, false
	}
	// Normalise fills EventTime from MSH-7 when EVN-2 is empty, so an
	// unreadable EventTime is an unreadable EVN-2 (or MSH-7 itself).
	if t, err := hl7v2.ParseTime(ev.Provenance.MessageTime); err == nil {
		return t, true, ev.Provenance.EventTime != ""
	}
	return time.Time{}, false, false
}

// CodeBadEventTime is the warning outcome of an ADT whose EVN-2 is not an
// HL7 time: MSH-7 ordered it instead.
const CodeBadEventTime = "route.bad_event_time"

// warnEventTime is the warning outcome for ev, routed as usual.
func (s *Stage) warnEventTime(in stages.Envelope, ev *avro.ClinicalEvent, h stages.Headers, now time.Time) (stages.Envelope, error) {
	o := s.outcome(ev, now)
	o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, avro.StatusWarning, CodeBadEventTime)
	o.Status = avro.StatusWarning
	o.ErrorCode, o.ErrorLocation = CodeBadEventTime, "EVN-2"
	o.ErrorText = "EVN-2 is not an HL7 time; MSH-7 ordered this update against the patient's others"
	return s.outcomeEnvelope(in, h.Clone(), o)
}

// sequence decides whether an ADT event is older than what was already
// applied for its patient. It returns the exception to raise when it is
// (the event is then not routed), and otherwise the change that advances
// the patient's state, if the event is newer; Process applies it once its
// outputs are built. badEVN says MSH-7 stood in for an unreadable EVN-2.
// Events that are not ADT, carry no patient key, or carry no readable time
// pass untouched.
func (s *Stage) sequence(in stages.Envelope, ev *avro.ClinicalEvent, h stages.Headers, now time.Time) (stale *avro.Exception, change *stages.Change, badEVN bool, err error) {
	key := string(in.Key)
	if s.patients == nil || ev.MessageType != "ADT" || key == "" || key == ev.IdempotencyKey {
		return nil, nil, false, nil // keyed by its idempotency key: it has no patient
	}
	at, ok, badEVN := eventTime(ev)
	if !ok {
		return nil, nil, false, nil
	}
	var prev patientState
	if b, found := s.patients.Get(in.Partition, key); found {
		if err := json.Unmarshal(b, &prev); err != nil {
			// A changelog entry careflow cannot read is careflow's fault,
			// not the message's: start this patient afresh.
			prev = patientState{}
		}
	}
	if !prev.EventTime.IsZero() && at.Before(prev.EventTime) {
		if !UpdateTriggers[ev.TriggerEvent] {
			return nil, nil, badEVN, nil // an older admission or the like: delivered, state unchanged
		}
		return &avro.Exception{
			ExceptionID:   identity.OutcomeID(ev.EventID, "exception", avro.ExceptionStaleUpdate),
			Code:          avro.ExceptionStaleUpdate,
			Stage:         topics.StageRoute,
			Interface:     ev.Provenance.Interface,
			MessageID:     ev.EventID,
			CorrelationID: ev.CorrelationID,
			ControlID:     ev.Provenance.ControlID,
			PatientKey:    key,
			Reason: fmt.Sprintf("%s^%s of %s is older than the update already applied for this patient (%s^%s of %s, message %s): not delivered",
				ev.MessageType, ev.TriggerEvent, hl7v2.FormatTime(at), "ADT", prev.Trigger, hl7v2.FormatTime(prev.EventTime), prev.MessageID),
			Action: avro.ActionNotDelivered,
			At:     now.UTC(),
		}, nil, badEVN, nil
	}
	b, err := json.Marshal(patientState{EventTime: at.UTC(), MessageID: ev.EventID, Trigger: ev.TriggerEvent})
	if err != nil {
		return nil, nil, false, err
	}
	c := s.patients.Change(in.Partition, key, b, h)
	return nil, &c, badEVN, nil
}

// staleOutputs are the records of an event sequence refused: the exception
// on careflow.exceptions and a stale outcome, so the message's journey
// ends visibly rather than in silence.
func (s *Stage) staleOutputs(in stages.Envelope, ev *avro.ClinicalEvent, x *avro.Exception, h stages.Headers, now time.Time) ([]stages.Envelope, error) {
	b, err := s.serde.Encode(x)
	if err != nil {
		return nil, stages.Transient(CodeEncode, fmt.Errorf("encode %s exception: %w", x.Code, err))
	}
	o := s.outcome(ev, now)
	o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, avro.StatusStale)
	o.Status = avro.StatusStale
	o.ErrorCode = x.Code
	o.ErrorText = x.Reason
	env, err := s.outcomeEnvelope(in, h.Clone(), o)
	if err != nil {
		return nil, err
	}
	s.metrics.exceptions.WithLabelValues(x.Code).Inc()
	return []stages.Envelope{{Topic: topics.Exceptions, Key: in.Key, Value: b, Headers: h.Clone()}, env}, nil
}
