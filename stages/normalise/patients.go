// This file asks the patient index who a message is about: the
// enterprise key its event is keyed by from here on, and, for a message
// that names a merged-away patient, the survivor's identifiers put first
// in PID-3 (the retired one kept after them). A message the index cannot
// decide alone is held for review (review.go).

package normalise

import (
	"slices"
	"strings"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/patientindex"
	"github.com/careflow-health/careflow/topics"
)

// identityMessage is what the index is asked about m.
func (s *Stage) identityMessage(m *hl7v2.Message, raw *avro.RawMessage, ev *avro.ClinicalEvent, in stages.Envelope) patientindex.Message {
	if m == nil {
		return s.fhirIdentityMessage(raw, ev, in)
	}
	msg := patientindex.Message{
		Interface: raw.Interface, MessageID: raw.MessageID, At: raw.ReceivedAt, Key: string(in.Key),
	}
	// A person's approval of an identity hold lets the index decide as
	// the message says; an approval of another hold does not.
	if code := in.Headers.Get(topics.HeaderReviewCode); slices.Contains([]string{patientindex.CodeConflict, patientindex.CodeMergeUnknown, patientindex.CodeUnlink}, code) {
		msg.Approved, msg.ApprovedCode = in.Headers.Get(topics.HeaderReviewID), code
	}
	if msg.At.IsZero() {
		msg.At = s.now()
	}
	p := s.identity[raw.Interface]
	key, invalid := p.PatientKey(m)
	if key != "" {
		msg.Key = key
	}
	bad := map[int]bool{}
	for _, x := range invalid {
		bad[x.Rep] = true
	}
	pids := m.SegmentsNamed("PID")
	if len(pids) == 0 {
		return msg
	}
	msg.Identifiers = cxList(pids[0].Field(3), bad)
	switch ev.EventType {
	case EventMerge:
		msg.Kind = patientindex.Merge
		if mrg, ok := m.Segment("MRG"); ok {
			msg.Other = cxList(mrg.Field(1), s.invalidIn(p, mrg.Field(1)))
		}
	case EventLink, EventUnlink:
		msg.Kind = patientindex.Link
		if ev.EventType == EventUnlink {
			msg.Kind = patientindex.Unlink
		}
		if len(pids) > 1 {
			msg.Other = cxList(pids[1].Field(3), s.invalidIn(p, pids[1].Field(3)))
		}
	}
	return msg
}

// invalidIn is which repetitions of f fail their check digit under p: a
// mistyped number in MRG-1 must not merge anyone either.
func (s *Stage) invalidIn(p identity.Policy, f hl7v2.Field) map[int]bool {
	bad := map[int]bool{}
	for i := 1; i <= f.Reps(); i++ {
		r := f.Rep(i)
		for _, t := range p.Trust {
			if t.Check == "" || !t.Matches(r) {
				continue
			}
			if identity.CheckDigit(t.Check, strings.TrimSpace(r.Component(1).String())) != nil {
				bad[i] = true
			}
			break
		}
	}
	return bad
}

// cxList is f's identifiers with an ID, less the repetitions in bad.
func cxList(f hl7v2.Field, bad map[int]bool) []patientindex.Identifier {
	var out []patientindex.Identifier
	for i := 1; i <= f.Reps(); i++ {
		r := f.Rep(i)
		v := str(r.Component(1))
		if v == "" || v == `""` || bad[i] {
			continue
		}
		out = append(out, patientindex.Identifier{Value: v, Authority: str(r.Component(4).Sub(1)), Type: str(r.Component(5)), Rep: i})
	}
	return out
}

// putSurvivorFirst rewrites the event's identifiers for a message that
// named a merged-away patient: the survivor's first, then the message's
// own that the survivor does not have (the retired number, as an
// alternate), so every subscriber files it under the survivor.
func putSurvivorFirst(ev *avro.ClinicalEvent, survivor []patientindex.Identifier) {
	if len(survivor) == 0 {
		return
	}
	out := make([]avro.Identifier, 0, len(survivor)+len(ev.Patient.Identifiers))
	for _, id := range survivor {
		out = append(out, avro.Identifier{Value: id.Value, AssigningAuthority: id.Authority, TypeCode: id.Type})
	}
	for _, id := range ev.Patient.Identifiers {
		if !slices.ContainsFunc(out, func(o avro.Identifier) bool {
			return o.Value == id.Value && o.AssigningAuthority == id.AssigningAuthority
		}) {
			out = append(out, id)
		}
	}
	ev.Patient.Identifiers = out
}
