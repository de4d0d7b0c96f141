// This file raises invalid_identifier: a PID-3 identifier its interface's
// policy says carries a check digit, and whose check digit is wrong (a
// mistyped NHS number). Ingest has not keyed the patient by it; the event
// still carries it as sent, and the exception tells the source's team.

package normalise

import (
	"fmt"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// CodeInvalidIdentifier is the exception of an identifier that fails its
// check digit.
const CodeInvalidIdentifier = "invalid_identifier"

// invalidIdentifiers returns an Exception record on careflow.exceptions
// for each identifier of m that fails its check digit. The reason names
// the repetition, type and authority, never the number.
func (s *Stage) invalidIdentifiers(key []byte, m *hl7v2.Message, ev *avro.ClinicalEvent, raw *avro.RawMessage, h stages.Headers, now time.Time) ([]stages.Envelope, error) {
	p, ok := s.identity[raw.Interface]
	if !ok {
		return nil, nil
	}
	var invalid []identity.Invalid
	at := func(rep int) string { return fmt.Sprintf("PID-3[%d]", rep) }
	if m != nil {
		_, invalid = p.PatientKey(m)
	} else {
		// A FHIR write: the patient's identifiers as Canonical read them.
		ids := make([]identity.Identifier, len(ev.Patient.Identifiers))
		for i, id := range ev.Patient.Identifiers {
			ids[i] = identity.Identifier{Value: id.Value, Authority: id.AssigningAuthority, Type: id.TypeCode}
		}
		_, invalid = p.Key(ids)
		at = func(rep int) string { return fmt.Sprintf("Patient.identifier[%d]", rep-1) }
	}
	var out []stages.Envelope
	for _, x := range invalid {
		loc := at(x.Rep)
		e := &avro.Exception{
			ExceptionID: identity.OutcomeID(raw.MessageID, "exception", CodeInvalidIdentifier, loc),
			Code:        CodeInvalidIdentifier, Stage: topics.StageNormalise, Interface: raw.Interface,
			MessageID: raw.MessageID, CorrelationID: raw.CorrelationID, ControlID: raw.ControlID, PatientKey: string(key),
			Reason: fmt.Sprintf("%s: the %s identifier of authority %s fails its check digit (%s); not used to identify the patient",
				loc, orDash(x.Type), orDash(x.Authority), x.Reason),
			Action: avro.ActionDelivered, At: now.UTC(), Location: loc,
		}
		b, err := s.serde.Encode(e)
		if err != nil {
			return nil, stages.Transient(CodeEncode, fmt.Errorf("normalise: interface %s: encode exception: %w", raw.Interface, err))
		}
		out = append(out, stages.Envelope{Topic: topics.Exceptions, Key: key, Value: b, Headers: h.Clone()})
		s.exceptions.WithLabelValues(CodeInvalidIdentifier).Inc()
	}
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
