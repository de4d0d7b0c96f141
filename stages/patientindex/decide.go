// This file decides, for one message, which patient it is about: the
// enterprise key to key it by, the index changes it makes, or the reason
// a person must decide instead (a hold for review).

package patientindex

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/careflow-health/careflow/stages"
)

// Kind is what a message does to identity.
type Kind int

const (
	Ordinary Kind = iota // names a patient (every event but the ones below)
	Merge                // A40, A34, A36, A39: Other's patient is merged into PID-3's
	Link                 // A24: the two patients are the same person's records, kept apart
	Unlink               // A37: undoes a link or a merge
)

// Hold codes: what a person must decide.
const (
	// CodeConflict: the message's identifiers belong to two patients, or
	// give a patient a second identifier of an authority it already has
	// one of (another NHS number for a known hospital number).
	CodeConflict = "identity_conflict"
	// CodeMergeUnknown: a merge retires a patient careflow has never seen
	// (or has not seen yet: a merge that overtook the patient).
	CodeMergeUnknown = "merge_unknown_patient"
	// CodeUnlink: an unlink or unmerge (A37), which a person confirms.
	CodeUnlink = "unlink"
)

// Message is what the index is asked about one message.
type Message struct {
	Interface string
	MessageID string
	At        time.Time // when careflow received it: first and last seen
	// Key is the key ingest gave it under the interface's policy: the
	// most trusted valid identifier, "value^authority".
	Key string
	// Identifiers are PID-3's, less those that failed a check digit.
	Identifiers []Identifier
	Kind        Kind
	// Other is MRG-1's identifiers for a merge, the second PID's for a
	// link or unlink.
	Other []Identifier
	// Approved is the review that approved this message, "" if none, and
	// ApprovedCode the hold it approved: a person decided, so that hold
	// goes ahead; any other is held again.
	Approved, ApprovedCode string
}

// Hold is why a message waits for a person.
type Hold struct {
	Code     string
	Location string // PID-3[2], MRG-1
	Reason   string // never the numbers themselves
}

// Decision is the index's answer for one message.
type Decision struct {
	Key string // the enterprise key; "" when the message names no patient
	// Survivor, when the message named a merged-away patient, is the
	// surviving patient's identifiers, to put first in PID-3.
	Survivor []Identifier
	Hold     *Hold // non-nil: nothing else applies
	Changes  []Change
}

// seenEvery is how stale an identifier's last-seen time may become before
// a message updates it: a write per message would double normalise's
// output for nothing a person reads to the second.
const seenEvery = time.Minute

// decision is one Decide call's working copy of the entries it touches.
type decision struct {
	x     *Index
	msg   Message
	ids   map[string]*IdentifierEntry
	pats  map[string]*PatientEntry
	dirty map[string]bool // "identifier/..." or "patient/..."
}

// Decide decides msg. Nothing changes until the caller applies the
// Decision's Changes (Index.Apply) with its outputs.
func (x *Index) Decide(msg Message, h stages.Headers) (Decision, error) {
	for i := range msg.Identifiers {
		msg.Identifiers[i].Scope = scope(msg.Identifiers[i], msg.Interface)
	}
	for i := range msg.Other {
		msg.Other[i].Scope = scope(msg.Other[i], msg.Interface)
	}
	if len(msg.Identifiers) == 0 {
		return Decision{Key: msg.Key}, nil
	}
	d := &decision{x: x, msg: msg, ids: map[string]*IdentifierEntry{}, pats: map[string]*PatientEntry{}, dirty: map[string]bool{}}
	if (msg.Kind == Link || msg.Kind == Unlink) && len(msg.Other) == 0 {
		return Decision{Hold: &Hold{Code: CodeConflict, Location: "PID-3",
			Reason: "a link or unlink (A24, A37) whose second PID names no usable identifier: a person decides which patients it means"}}, nil
	}
	if msg.Kind == Unlink && !d.approved(CodeUnlink) {
		return Decision{Hold: &Hold{Code: CodeUnlink, Location: "PID-3",
			Reason: "an unlink or unmerge (A37) separates patients careflow keeps as one or linked: a person confirms it"}}, nil
	}
	// A merge's PID-3 may list identifiers the patients it retires hold
	// (senders send the survivor's whole list): those are not a conflict.
	retiring := map[string]bool{}
	if msg.Kind == Merge {
		for _, id := range msg.Other {
			if e := d.identifier(id.ID()); e != nil {
				retiring[d.resolve(e.Patient)] = true
			}
		}
	}
	target, hold := d.patientOf(msg.Identifiers, "PID-3", retiring)
	if hold != nil {
		return Decision{Hold: hold}, nil
	}
	switch msg.Kind {
	case Merge:
		if hold := d.merge(target); hold != nil {
			return Decision{Hold: hold}, nil
		}
	case Link:
		if hold := d.link(target); hold != nil {
			return Decision{Hold: hold}, nil
		}
	case Unlink:
		d.unlink(target)
	}
	dec := Decision{Key: target, Survivor: d.survivor(target)}
	for key := range d.dirty {
		var v any
		if id, ok := strings.CutPrefix(key, identifierPrefix); ok {
			v = d.ids[id]
		} else {
			v = d.pats[strings.TrimPrefix(key, patientPrefix)]
		}
		c, err := change(key, v, h)
		if err != nil {
			return Decision{}, err
		}
		dec.Changes = append(dec.Changes, c)
	}
	slices.SortFunc(dec.Changes, func(a, b Change) int { return strings.Compare(a.key, b.key) })
	return dec, nil
}

// scope is the interface an identifier without an authority is known
// within, "" for one with an authority.
func scope(i Identifier, iface string) string {
	if i.Authority == "" {
		return iface
	}
	return ""
}

func (d *decision) identifier(id string) *IdentifierEntry {
	if e, ok := d.ids[id]; ok {
		return e
	}
	e, ok := d.x.Identifier(id)
	if !ok {
		return nil
	}
	d.ids[id] = e
	return e
}

func (d *decision) patient(key string) *PatientEntry {
	if p, ok := d.pats[key]; ok {
		return p
	}
	p, ok := d.x.Patient(key)
	if !ok {
		return nil
	}
	d.pats[key] = p
	return p
}

func (d *decision) touch(e any) {
	switch v := e.(type) {
	case *IdentifierEntry:
		d.ids[v.ID()] = v
		d.dirty[identifierPrefix+v.ID()] = true
	case *PatientEntry:
		d.pats[v.Key] = v
		d.dirty[patientPrefix+v.Key] = true
	}
}

// resolve follows merges over the working copy.
func (d *decision) resolve(key string) string {
	for range maxChain {
		p := d.patient(key)
		if p == nil || p.MergedInto == "" || p.MergedInto == key {
			return key
		}
		key = p.MergedInto
	}
	return key
}

// approved reports whether a person approved this message's hold code.
func (d *decision) approved(code string) bool {
	return d.msg.Approved != "" && d.msg.ApprovedCode == code
}

func (d *decision) event(what, other string) Event {
	return Event{At: d.msg.At, What: what, Other: other, Interface: d.msg.Interface, MessageID: d.msg.MessageID, ReviewID: d.msg.Approved}
}

// patientOf is the patient ids identify, creating it when none is known,
// adding the ids it does not have yet; or the hold when they conflict.
// field names where ids came from, for the hold's location.
// Patients in retiring (a merge's MRG-1) do not conflict with another.
func (d *decision) patientOf(ids []Identifier, field string, retiring map[string]bool) (string, *Hold) {
	known := map[string][]Identifier{} // resolved patient → its ids here
	var order []string
	var unknown []Identifier
	for _, id := range ids {
		e := d.identifier(id.ID())
		if e == nil {
			unknown = append(unknown, id)
			continue
		}
		p := d.resolve(e.Patient)
		if _, ok := known[p]; !ok {
			order = append(order, p)
		}
		known[p] = append(known[p], id)
	}
	if len(order) > 1 {
		if rest := slices.DeleteFunc(slices.Clone(order), func(p string) bool { return retiring[p] }); len(rest) > 0 {
			order = rest
		}
	}
	var target string
	created := false
	switch {
	case len(order) > 1 && !d.approved(CodeConflict):
		a, b := known[order[0]][0], known[order[1]][0]
		return "", &Hold{Code: CodeConflict, Location: fmt.Sprintf("%s[%d]", field, b.Rep),
			Reason: fmt.Sprintf("%s[%d] (%s) and %s[%d] (%s) belong to two different patients careflow knows",
				field, a.Rep, a.Kind(), field, b.Rep, b.Kind())}
	case len(order) > 1:
		// A person approved it: the message is right, and its most
		// trusted identifier says who the patient is.
		target = order[0]
		for _, p := range order {
			if slices.ContainsFunc(known[p], func(i Identifier) bool { return d.keyOf(i) }) {
				target = p
			}
		}
		for _, p := range order {
			if p != target {
				for _, id := range known[p] {
					d.move(id, target)
				}
			}
		}
	case len(order) == 1:
		target = order[0]
	default:
		target = d.newKey(ids)
		p := &PatientEntry{Key: target}
		p.record(d.event("created", ""))
		d.touch(p)
		created = true
	}
	tp := d.patient(target)
	if tp == nil { // known identifiers whose patient record was lost
		tp = &PatientEntry{Key: target}
		d.touch(tp)
	}
	for _, id := range unknown {
		if other := d.sameAuthority(tp, id); other != nil && !d.approved(CodeConflict) {
			return "", &Hold{Code: CodeConflict, Location: fmt.Sprintf("%s[%d]", field, id.Rep),
				Reason: fmt.Sprintf("%s[%d] (%s) is a second %s identifier for a patient careflow knows by another one",
					field, id.Rep, id.Kind(), id.Kind())}
		}
	}
	for _, id := range unknown {
		e := &IdentifierEntry{Identifier: id, Patient: target}
		d.touch(e)
		if !slices.Contains(tp.Identifiers, id.ID()) {
			tp.Identifiers = append(tp.Identifiers, id.ID())
			if !created { // a new patient's identifiers are in its "created"
				tp.record(d.event("identifier_added", id.Kind()))
			}
			d.touch(tp)
		}
	}
	for _, id := range ids {
		d.seen(id)
	}
	return target, nil
}

// keyOf reports whether id is the one ingest keyed the message by.
func (d *decision) keyOf(id Identifier) bool {
	return strings.EqualFold(id.Value+"^"+id.Authority, d.msg.Key)
}

// newKey is a new patient's enterprise key: the id of the identifier the
// policy keyed the message by, else the first.
func (d *decision) newKey(ids []Identifier) string {
	for _, id := range ids {
		if d.keyOf(id) {
			return id.ID()
		}
	}
	if len(ids) == 0 {
		return d.msg.Key
	}
	return ids[0].ID()
}

// sameAuthority is p's identifier of id's kind with another value, nil if
// none: one patient has one NHS number, one MRN per hospital. p's
// identifiers include those of the patients merged into it. A kind is the
// authority and the type; a missing type matches any (a lab that leaves
// CX.5 empty still sends an NHS number).
func (d *decision) sameAuthority(p *PatientEntry, id Identifier) *IdentifierEntry {
	if id.Authority == "" {
		return nil
	}
	for _, have := range p.Identifiers {
		e := d.identifier(have)
		if e == nil || e.Value == id.Value || d.resolve(e.Patient) != p.Key {
			continue
		}
		if strings.EqualFold(e.Authority, id.Authority) &&
			(e.Type == "" || id.Type == "" || strings.EqualFold(e.Type, id.Type)) {
			return e
		}
	}
	return nil
}

// move gives id to patient target (a person approved it).
func (d *decision) move(id Identifier, target string) {
	e := d.identifier(id.ID())
	if from := d.patient(e.Patient); from != nil {
		from.Identifiers = slices.DeleteFunc(from.Identifiers, func(s string) bool { return s == id.ID() })
		from.record(d.event("identifier_moved", id.Kind()))
		d.touch(from)
	}
	e.Patient = target
	d.touch(e)
	if tp := d.patient(target); tp != nil && !slices.Contains(tp.Identifiers, id.ID()) {
		tp.Identifiers = append(tp.Identifiers, id.ID())
		tp.record(d.event("identifier_added", id.Kind()))
		d.touch(tp)
	}
}

// seen records that the message's interface sent id now.
func (d *decision) seen(id Identifier) {
	e := d.identifier(id.ID())
	if e == nil {
		return
	}
	at := d.msg.At
	for i := range e.Sources {
		s := &e.Sources[i]
		if s.Interface != d.msg.Interface {
			continue
		}
		if at.Sub(s.Last) >= seenEvery {
			s.Last = at
			d.touch(e)
		}
		return
	}
	e.Sources = append(e.Sources, Seen{Interface: d.msg.Interface, First: at, Last: at})
	d.touch(e)
}

// survivor is, when the message named target only through a merge, the
// survivor's identifiers that stand for the retired ones: those of the
// same type and authority (the surviving MRN for a retired MRN), else the
// one the survivor is keyed by. nil otherwise. Only those: a destination
// gets the identifier it files the patient under, not every number
// careflow knows.
func (d *decision) survivor(target string) []Identifier {
	var retired []Identifier
	for _, id := range d.msg.Identifiers {
		if e := d.identifier(id.ID()); e != nil && e.Patient != target {
			retired = append(retired, id)
		}
	}
	tp := d.patient(target)
	if len(retired) == 0 || tp == nil {
		return nil
	}
	var own []Identifier
	for _, s := range tp.Identifiers {
		if e := d.identifier(s); e != nil && e.Patient == target {
			own = append(own, e.Identifier)
		}
	}
	var out []Identifier
	for _, r := range retired {
		for _, o := range own {
			if strings.EqualFold(o.Authority, r.Authority) && strings.EqualFold(o.Type, r.Type) &&
				!slices.ContainsFunc(out, func(x Identifier) bool { return x.ID() == o.ID() }) {
				out = append(out, o)
			}
		}
	}
	if len(out) == 0 {
		for _, o := range own {
			if o.ID() == target {
				out = append(out, o)
			}
		}
	}
	return out
}
