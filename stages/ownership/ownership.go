// Package ownership is the source-of-truth matrix (docs/ownership.md): for
// each domain and field of a patient's record, the inbound interfaces that
// own it and what becomes of an update from any other. Matrix.Apply is a
// pure function of an event, its source and what was last applied, so the
// normalise stage can call it and the patient index can keep the state.
package ownership

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// The fields a rule can govern. The demographics fields and next_of_kin
// and allergies are parts of an ADT message; orders, results and
// appointments are whole messages (ORM/OML/ORR/ORL, ORU, SIU).
const (
	Name         = "demographics.name"
	BirthDate    = "demographics.birth_date"
	Sex          = "demographics.sex"
	Address      = "demographics.address"
	Telecom      = "demographics.telecom"
	GP           = "demographics.gp"
	NextOfKin    = "next_of_kin"
	Allergies    = "allergies"
	Orders       = "orders"
	Results      = "results"
	Appointments = "appointments"
)

// fields is the vocabulary, in the order Apply considers (and reports) it.
var fields = []string{Name, BirthDate, Sex, Address, Telecom, GP, NextOfKin, Allergies, Orders, Results, Appointments}

// Fields returns every field a rule can govern. The slice is the caller's.
func Fields() []string { return slices.Clone(fields) }

// Whole reports whether field is a whole-message domain (orders, results,
// appointments): stripping it withholds the event.
func Whole(field string) bool { return field == Orders || field == Results || field == Appointments }

// What becomes of an update from an interface that does not own the field.
const (
	// Accept applies it as if an owner had sent it.
	Accept = "accept"
	// Strip removes the field from what is delivered; the rest goes on.
	// For a whole-message domain the event is not delivered. The default.
	Strip = "strip"
	// Review holds the message for a person (the review queue); an
	// approved one is delivered as sent.
	Review = "review"
)

// Others returns the values a rule's Others may take.
func Others() []string { return []string{Accept, Strip, Review} }

// Rule is the ownership of one field.
type Rule struct {
	// Owners are the inbound interfaces whose updates of the field apply.
	Owners []string
	// Others is Accept, Strip or Review; "" means Strip.
	Others string
	// Newer makes an update apply only when its event time is later than
	// the last one applied for the field, owner or not; one that is not
	// is removed like a stripped field (field_not_newer).
	Newer bool
}

// Matrix is a validated source-of-truth matrix. A nil *Matrix governs
// nothing: every update applies.
type Matrix struct {
	version string
	rules   map[string]Rule
}

// New checks rules (keyed by field) and returns the matrix. version names
// this edition of it, for outcomes to cite.
func New(version string, rules map[string]Rule) (*Matrix, error) {
	m := &Matrix{version: version, rules: map[string]Rule{}}
	for f, r := range rules {
		if !slices.Contains(fields, f) {
			return nil, fmt.Errorf("ownership: unknown field %q (fields: %v)", f, fields)
		}
		if r.Others == "" {
			r.Others = Strip
		}
		if !slices.Contains(Others(), r.Others) {
			return nil, fmt.Errorf("ownership: %s: others is %q, want accept, strip or review", f, r.Others)
		}
		if len(r.Owners) == 0 {
			return nil, fmt.Errorf("ownership: %s: no owners", f)
		}
		r.Owners = slices.Clone(r.Owners)
		m.rules[f] = r
	}
	return m, nil
}

// Version is the matrix's version as configured.
func (m *Matrix) Version() string {
	if m == nil {
		return ""
	}
	return m.version
}

// Rule returns the rule of field, if there is one.
func (m *Matrix) Rule(field string) (Rule, bool) {
	if m == nil {
		return Rule{}, false
	}
	r, ok := m.rules[field]
	return r, ok
}

// Decision is what Apply did to an event. Every list holds field names in
// the order of Fields.
type Decision struct {
	// Stripped are fields a non-owner sent under a strip rule: removed.
	Stripped []string
	// Review are fields a non-owner sent under a review rule: delivered
	// as sent, to be reviewed. They are not in Applied.
	Review []string
	// Stale are fields an update under a newer rule changed with an event
	// time not later than the last applied one (or, when one was applied,
	// with no readable time): removed.
	Stale []string
	// Applied maps each field the update applies to its event time, for
	// the caller to remember as the field's last applied. A field applied
	// from an event without a readable time is left out.
	Applied map[string]time.Time
	// Withheld is set when a whole-message domain was stripped or stale:
	// the event must not be delivered.
	Withheld bool
	// Fingerprints maps each field the update applies to a fingerprint of
	// its value, for the caller to remember beside Applied.
	Fingerprints map[string]string
}

// Known is what careflow knows of one patient's governed fields: when
// each was last applied, and a fingerprint of the value applied then.
type Known interface {
	Last(field string) (time.Time, bool)
	Fingerprint(field string) (string, bool)
}

// lastOnly is a Known that knows times only.
type lastOnly func(field string) (time.Time, bool)

func (l lastOnly) Last(f string) (time.Time, bool) {
	if l == nil {
		return time.Time{}, false
	}
	return l(f)
}
func (lastOnly) Fingerprint(string) (string, bool) { return "", false }

// Fingerprint is a digest of ev's value of field: equal values, equal
// fingerprints. It lets careflow tell a non-owner repeating what the
// patient's record already says (which changes nothing, and is passed)
// from an update, without keeping the value itself.
func Fingerprint(ev *avro.ClinicalEvent, field string) string {
	p := &ev.Patient
	var v any
	switch field {
	case Name:
		v = []any{p.FamilyName, p.GivenNames}
	case BirthDate:
		v = p.BirthDate
	case Sex:
		v = p.Sex
	case Address:
		v = p.Addresses
	case Telecom:
		v = p.Telecoms
	case GP:
		v = p.GP
	case NextOfKin:
		v = ev.NextOfKin
	case Allergies:
		v = ev.Allergies
	default:
		return ""
	}
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(append([]byte(field+"\x00"), b...))
	return hex.EncodeToString(sum[:8])
}

// Apply decides, for each governed field ev carries, whether the update
// from source applies, and removes in place from ev what does not. last
// returns the event time last applied for a field of this patient; a nil
// last knows none, so every newer check passes.
//
// A demographics, next_of_kin or allergies rule applies to ADT events that
// carry the field (an empty field changes nothing); an orders, results or
// appointments rule to every event of that domain. The patient data an
// order or result carries identifies the patient and is not governed.
func (m *Matrix) Apply(ev *avro.ClinicalEvent, source string, last func(field string) (time.Time, bool)) Decision {
	return m.ApplyKnown(ev, source, lastOnly(last))
}

// ApplyKnown is Apply with what careflow knows of the patient's fields:
// a non-owner whose value of a field is the one last applied (a portal
// repeating the name the EHR gave) is not updating it, and passes.
func (m *Matrix) ApplyKnown(ev *avro.ClinicalEvent, source string, known Known) Decision {
	var d Decision
	if known == nil {
		known = lastOnly(nil)
	}
	if m == nil || len(m.rules) == 0 {
		return d
	}
	at, timed := EventTime(ev)
	for _, f := range fields {
		r, ok := m.rules[f]
		if !ok || !carries(ev, f) {
			continue
		}
		fp := Fingerprint(ev, f)
		if !slices.Contains(r.Owners, source) {
			if was, ok := known.Fingerprint(f); ok && fp != "" && was == fp {
				continue // what the record already says: not an update
			}
			switch r.Others {
			case Review:
				d.Review = append(d.Review, f)
				continue
			case Strip:
				d.Stripped = append(d.Stripped, f)
				d.Withheld = d.Withheld || strip(ev, f)
				continue
			}
		}
		if r.Newer {
			prev, seen := known.Last(f)
			if seen && (!timed || !at.After(prev)) {
				d.Stale = append(d.Stale, f)
				d.Withheld = d.Withheld || strip(ev, f)
				continue
			}
		}
		if timed {
			if d.Applied == nil {
				d.Applied = map[string]time.Time{}
			}
			d.Applied[f] = at
		}
		if fp != "" {
			if d.Fingerprints == nil {
				d.Fingerprints = map[string]string{}
			}
			d.Fingerprints[f] = fp
		}
	}
	return d
}

// EventTime is when the event happened: EVN-2, else MSH-7 (the order
// route sequences ADT by, stages/route/sequence.go).
func EventTime(ev *avro.ClinicalEvent) (time.Time, bool) {
	if t, err := hl7v2.ParseTime(ev.Provenance.EventTime); err == nil {
		return t, true
	}
	if t, err := hl7v2.ParseTime(ev.Provenance.MessageTime); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// carries reports whether ev is an update of field.
func carries(ev *avro.ClinicalEvent, field string) bool {
	switch field {
	case Orders:
		// Placers' orders only: an order response (ORR, ORL) is the
		// filler's answer on the return path, which the placer never owns.
		return slices.Contains([]string{"ORM", "OML"}, ev.MessageType)
	case Results:
		return ev.MessageType == "ORU"
	case Appointments:
		return ev.MessageType == "SIU"
	}
	if ev.MessageType != "ADT" {
		return false
	}
	p := &ev.Patient
	switch field {
	case Name:
		return p.FamilyName != "" || len(p.GivenNames) > 0
	case BirthDate:
		return p.BirthDate != ""
	case Sex:
		return p.Sex != ""
	case Address:
		return len(p.Addresses) > 0
	case Telecom:
		return len(p.Telecoms) > 0
	case GP:
		return p.GP != (avro.Practitioner{})
	case NextOfKin:
		return len(ev.NextOfKin) > 0
	case Allergies:
		return len(ev.Allergies) > 0
	}
	return false
}

// strip removes field from ev and reports whether that withholds the
// whole event.
func strip(ev *avro.ClinicalEvent, field string) (withheld bool) {
	p := &ev.Patient
	switch field {
	case Name:
		p.FamilyName, p.GivenNames = "", nil
	case BirthDate:
		p.BirthDate = ""
	case Sex:
		p.Sex = ""
	case Address:
		p.Addresses = nil
	case Telecom:
		p.Telecoms = nil
	case GP:
		p.GP = avro.Practitioner{}
	case NextOfKin:
		ev.NextOfKin = nil
	case Allergies:
		ev.Allergies = nil
	default:
		return Whole(field)
	}
	return false
}
