// This file is the catalogue of ClinicalEvent's field paths, the names a
// destination's `fields` allow-list is written in (docs/routing.md, "Least
// data per subscriber"). It is derived from the Go type's json tags by
// reflection, once, so it cannot drift from records.go, and records.go
// cannot drift from ClinicalEvent.avsc (TestSchemasMatchRecords).

package avro

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/careflow-health/careflow/internal/levenshtein"
)

// FieldKind says what an EventField names.
type FieldKind uint8

// Field kinds.
const (
	FieldValue  FieldKind = iota // a string, number, time or list of strings
	FieldRecord                  // a record (patient, encounter, provenance): its sub-fields follow it
	FieldList                    // a list of records (orders, patient.addresses): its sub-fields address every element
)

func (k FieldKind) String() string {
	switch k {
	case FieldRecord:
		return "record"
	case FieldList:
		return "list"
	default:
		return "value"
	}
}

// EventField is one path of ClinicalEvent.
type EventField struct {
	// Path is the JSON field names from the event down, joined by dots.
	// A list's elements are addressed through the list's name:
	// "observations.value" is the value of every observation.
	Path string
	Kind FieldKind
	// Envelope marks careflow's identity, type and provenance fields
	// (event_id ... trigger_event, provenance.*). They hold no patient
	// data and rendering needs them, so they are never filtered.
	Envelope bool
}

// envelopeFields are the top-level fields of ClinicalEvent that are never
// filtered. Every other top-level field is clinical content, so a field
// added to ClinicalEvent later is filtered unless it is added here.
var envelopeFields = map[string]bool{
	"event_id": true, "correlation_id": true, "idempotency_key": true,
	"event_type": true, "message_type": true, "trigger_event": true,
	"provenance": true,
}

var (
	eventFields = walkFields(nil, "", reflect.TypeFor[ClinicalEvent](), false)
	eventIndex  = func() map[string]EventField {
		m := make(map[string]EventField, len(eventFields))
		for _, f := range eventFields {
			m[f.Path] = f
		}
		return m
	}()
)

// walkFields appends the paths of struct type t, each prefixed by prefix,
// in field order with every record or list before its sub-fields.
func walkFields(out []EventField, prefix string, t reflect.Type, envelope bool) []EventField {
	timeType := reflect.TypeFor[time.Time]()
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		f := EventField{Path: prefix + name, Envelope: envelope || prefix == "" && envelopeFields[name]}
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != timeType:
			f.Kind = FieldRecord
			out = append(out, f)
			out = walkFields(out, f.Path+".", ft, f.Envelope)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			f.Kind = FieldList
			out = append(out, f)
			out = walkFields(out, f.Path+".", ft.Elem(), f.Envelope)
		default:
			out = append(out, f)
		}
	}
	return out
}

// EventFields returns every path of ClinicalEvent, records and lists
// before their sub-fields, in the order of records.go. The slice is the
// caller's.
func EventFields() []EventField {
	return append([]EventField(nil), eventFields...)
}

// LookupEventField returns the EventField whose Path is path.
func LookupEventField(path string) (EventField, bool) {
	f, ok := eventIndex[path]
	return f, ok
}

// FieldPathError is an entry of a `fields` list that names no path of
// ClinicalEvent.
type FieldPathError struct {
	Index      int    // the entry's position in the list, from 0
	Path       string // the entry as written
	Suggestion string // the closest path of the event; "" when none is close
}

func (e *FieldPathError) Error() string {
	if e.Path == "" {
		return "empty field path"
	}
	msg := fmt.Sprintf("%q is not a field of the canonical event", e.Path)
	if e.Suggestion != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", e.Suggestion)
	}
	return msg
}

// CheckEventFields returns one *FieldPathError for each entry of paths
// that is not a path of ClinicalEvent (EventFields), in list order, with
// the closest path as a suggestion when one is near; nil when every entry
// is a path. Envelope paths are valid entries (they are always sent
// anyway).
func CheckEventFields(paths []string) []error {
	var errs []error
	for i, p := range paths {
		if _, ok := eventIndex[p]; ok {
			continue
		}
		e := &FieldPathError{Index: i, Path: p}
		if strings.TrimSpace(p) != "" {
			e.Suggestion = suggestField(p)
		}
		errs = append(errs, e)
	}
	return errs
}

// suggestField returns the path of the event closest to got: by edit
// distance when one is a typo away (patient.famly_name), else the only
// path that ends in got (birth_date → patient.birth_date). Case, spaces
// and list indexes (observations[0].value) are ignored.
func suggestField(got string) string {
	norm := stripIndexes(strings.ToLower(strings.TrimSpace(got)))
	if f, ok := eventIndex[norm]; ok {
		return f.Path
	}
	best, bestDist := "", 3
	for _, f := range eventFields {
		if d := levenshtein.Distance(norm, f.Path); d < bestDist {
			best, bestDist = f.Path, d
		}
	}
	// A typo changes at most half of the last name: "rooom" is "room",
	// but "ward" (three edits from "bed") is another word.
	if best != "" && bestDist <= len(best[strings.LastIndexByte(best, '.')+1:])/2 {
		return best
	}
	// A path written without its parents: suggest it only when exactly one
	// path ends in it, since "value" alone could be an identifier's or an
	// observation's.
	var only string
	for _, f := range eventFields {
		if strings.HasSuffix(f.Path, "."+norm) {
			if only != "" {
				return ""
			}
			only = f.Path
		}
	}
	return only
}

// stripIndexes removes bracketed list indexes: "orders[0].status" →
// "orders.status".
func stripIndexes(s string) string {
	for {
		i := strings.IndexByte(s, '[')
		j := strings.IndexByte(s, ']')
		if i < 0 || j < i {
			return s
		}
		s = s[:i] + s[j+1:]
	}
}
