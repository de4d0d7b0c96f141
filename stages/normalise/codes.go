// This file applies code maps (stages/codemap, docs/codes.md) to the
// coded fields of an event: a local code a map knows is replaced by the
// standard one, and the local one moves to the field's alternate coding
// (CWE.4-6), so every destination receives both. A code no map knows
// raises unmapped_code and is passed on as sent, or, by the map's policy,
// held for review.

package normalise

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/codemap"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/stages/review"
	"github.com/careflow-health/careflow/topics"
)

// CodeUnmappedCode is the exception of a local code that no code map
// applying to its field knows.
const CodeUnmappedCode = "unmapped_code"

// coded is one coded field of an event: a primary and an alternate
// coding, each code, text and system.
type coded struct {
	field                       string // codemap.FieldOBX3, ...
	order                       int    // the index of the order it belongs to; -1 when none
	code, text, system          *string
	altCode, altText, altSystem *string
}

// codedFields lists the coded fields of ev that maps can apply to, in
// message order.
func codedFields(ev *avro.ClinicalEvent) []coded {
	var out []coded
	for i := range ev.Orders {
		o := &ev.Orders[i]
		out = append(out, coded{codemap.FieldOBR4, i, &o.ServiceCode, &o.ServiceText, &o.ServiceSystem,
			&o.ServiceAltCode, &o.ServiceAltText, &o.ServiceAltSystem})
	}
	for i := range ev.Observations {
		o := &ev.Observations[i]
		out = append(out,
			coded{codemap.FieldOBX3, o.OrderIndex, &o.Code, &o.Text, &o.CodingSystem, &o.AltCode, &o.AltText, &o.AltCodingSystem},
			coded{codemap.FieldOBX6, o.OrderIndex, &o.Units, &o.UnitsText, &o.UnitsSystem, &o.UnitsAltCode, &o.UnitsAltText, &o.UnitsAltSystem})
	}
	for i := range ev.Allergies {
		a := &ev.Allergies[i]
		out = append(out, coded{codemap.FieldAL13, -1, &a.Code, &a.Text, &a.CodingSystem, &a.AltCode, &a.AltText, &a.AltCodingSystem})
	}
	return out
}

// mapCodes applies the stage's code maps to ev in place and records in
// ev.Provenance.CodeMaps the maps (name@version) its codes were read
// against. It returns an Exception record on careflow.exceptions for each
// distinct unmapped code, and, for those whose map holds, the reasons the
// message should be held for review (empty when it passes).
func (s *Stage) mapCodes(_ context.Context, ev *avro.ClinicalEvent, raw *avro.RawMessage, key []byte, h stages.Headers, now time.Time) (exceptions []stages.Envelope, hold []string, err error) {
	if len(s.codes) == 0 {
		return nil, nil, nil
	}
	seen := map[string]bool{}
	for _, f := range codedFields(ev) {
		if *f.code == "" {
			continue
		}
		var maps []*codemap.Binding
		for i := range s.codes {
			if b := &s.codes[i]; b.AppliesTo(raw.Interface, f.field) && b.Takes(*f.system) {
				maps = append(maps, b)
			}
		}
		if len(maps) == 0 {
			continue
		}
		for _, b := range maps {
			if id := b.Map.ID(); !slices.Contains(ev.Provenance.CodeMaps, id) {
				ev.Provenance.CodeMaps = append(ev.Provenance.CodeMaps, id)
			}
		}
		if translate(f, maps) {
			continue
		}
		k := f.field + "\x00" + *f.system + "\x00" + *f.code
		if seen[k] {
			continue // one exception per code and field in a message
		}
		seen[k] = true
		x, reason := s.unmapped(f, maps, ev, raw, key, now)
		if x.Action == avro.ActionHeld {
			hold = append(hold, reason)
			x.ReviewID = review.ID(raw.MessageID, CodeUnmappedCode) // the item normalise holds it in
		}
		b, err := s.serde.Encode(x)
		if err != nil {
			return nil, nil, stages.Transient(CodeEncode, fmt.Errorf("normalise: interface %s: encode exception: %w", raw.Interface, err))
		}
		exceptions = append(exceptions, stages.Envelope{Topic: topics.Exceptions, Key: key, Value: b, Headers: h.Clone()})
		s.exceptions.WithLabelValues(CodeUnmappedCode).Inc()
		s.unmappedCodes.WithLabelValues(maps[0].Map.Name, raw.Interface).Inc()
	}
	return exceptions, hold, nil
}

// translate replaces f's local code by the standard one the first of maps
// knows, moving the local coding to the alternate; false when none knows
// it. A sender that already gave the standard code as the alternate
// coded it itself: the two swap places.
func translate(f coded, maps []*codemap.Binding) bool {
	for _, b := range maps {
		e, ok := b.Map.Lookup(*f.system, *f.code)
		if !ok {
			continue
		}
		text := e.Display
		if text == "" {
			text = *f.text
		}
		*f.altCode, *f.altText, *f.altSystem = *f.code, *f.text, *f.system
		*f.code, *f.text, *f.system = e.Code, text, e.System
		return true
	}
	if *f.altCode != "" && slices.ContainsFunc(maps, func(b *codemap.Binding) bool { return b.Map.IsTarget(*f.altSystem) }) {
		*f.code, *f.altCode = *f.altCode, *f.code
		*f.text, *f.altText = *f.altText, *f.text
		*f.system, *f.altSystem = *f.altSystem, *f.system
		return true
	}
	return false
}

// unmapped is the exception of f, whose code none of maps knows, and the
// reason it gives. The reason names the field, the code and the maps
// with their versions: a code is not patient data.
func (s *Stage) unmapped(f coded, maps []*codemap.Binding, ev *avro.ClinicalEvent, raw *avro.RawMessage, key []byte, now time.Time) (*avro.Exception, string) {
	ids := make([]string, len(maps))
	action, then := avro.ActionDelivered, "passed on as sent"
	for i, b := range maps {
		ids[i] = fmt.Sprintf("%s (version %s)", b.Map.Name, b.Map.Version)
		if b.Hold {
			action, then = avro.ActionHeld, "held for review"
		}
	}
	system := *f.system
	if system == "" {
		system = "-"
	}
	reason := fmt.Sprintf("%s: local code %s of system %s is not in code map %s", f.field, *f.code, system, strings.Join(ids, " or "))
	x := &avro.Exception{
		ExceptionID: identity.OutcomeID(raw.MessageID, "exception", CodeUnmappedCode, f.field, *f.system, *f.code),
		Code:        CodeUnmappedCode, Stage: topics.StageNormalise, Interface: raw.Interface,
		MessageID: raw.MessageID, CorrelationID: raw.CorrelationID, ControlID: raw.ControlID, PatientKey: string(key),
		Reason: reason + "; " + then, Action: action, At: now.UTC(),
		Location: f.field, CodedValue: *f.code, CodingSystem: *f.system,
	}
	if f.order >= 0 && f.order < len(ev.Orders) {
		o := &ev.Orders[f.order]
		x.PlacerOrder = lifecycle.OrderKey(o.PlacerOrderNumber, o.PlacerNamespace)
		x.FillerOrder = lifecycle.OrderKey(o.FillerOrderNumber, o.FillerNamespace)
	}
	return x, reason
}
