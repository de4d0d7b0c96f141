// Package patientindex is careflow's patient index: every patient
// identifier careflow has seen, the enterprise patient key it belongs to,
// and the merges and links between patients. Normalise consults it for
// every message that names a patient, so that one person known to two
// systems by two hospital numbers and one NHS number has one key, and an
// event for a merged-away identifier reaches every subscriber under the
// survivor.
//
// The index is a compacted topic, careflow.patients, of JSON records: one
// per identifier ("identifier/" + id) and one per patient ("patient/" +
// key). Unlike a stages.Table it is global: every copy of normalise holds
// all of it, because a message's identifiers may belong to a patient
// keyed on any partition. Normalise writes its changes in the transaction
// of the message that caused them, so a crash neither loses nor repeats
// one, and Load rebuilds the index from the topic whenever partitions are
// assigned (docs/identity.md says what that means for several copies).
package patientindex

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// Identifier is one patient identifier (HL7 CX): its value, assigning
// authority (CX.4.1) and type (CX.5). Scope is the inbound interface an
// identifier without an authority was sent by: such a number is only
// known to mean the same patient within that interface.
type Identifier struct {
	Value     string `json:"value"`
	Authority string `json:"authority"`
	Type      string `json:"type"`
	Scope     string `json:"scope,omitempty"`
	Rep       int    `json:"-"` // its repetition in the message, from 1, for error locations
}

// ID is the identifier as the index keys it: "value^authority", as the
// patient key is written, or "value^@interface" without an authority.
//
// The authority is upper-cased, as trust policies compare it: "nhs" and
// "NHS" are one authority, and one patient.
func (i Identifier) ID() string {
	if i.Authority == "" {
		return i.Value + "^@" + i.Scope
	}
	return i.Value + "^" + strings.ToUpper(i.Authority)
}

// Kind is "type/authority", what a person reads in place of the number.
func (i Identifier) Kind() string {
	return orDash(i.Type) + "/" + orDash(i.Authority)
}

// Seen is when one interface sent an identifier, first and last.
type Seen struct {
	Interface string    `json:"interface"`
	First     time.Time `json:"first_seen"`
	Last      time.Time `json:"last_seen"`
}

// IdentifierEntry is an identifier's record: the patient it belongs to
// (before any merge of that patient is followed) and who sent it.
type IdentifierEntry struct {
	Identifier
	Patient string `json:"patient"`
	Sources []Seen `json:"sources"`
}

// Event is one change to a patient in its history.
type Event struct {
	At        time.Time `json:"at"`
	What      string    `json:"what"`            // created, identifier_added, identifier_moved, merged, merged_into, linked, unlinked, unmerged
	Other     string    `json:"other,omitempty"` // the other patient key, or the identifier
	Interface string    `json:"interface,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
	ReviewID  string    `json:"review_id,omitempty"`
}

// PatientEntry is a patient's record.
type PatientEntry struct {
	Key         string   `json:"key"`
	Identifiers []string `json:"identifiers"` // ids, in the order first seen
	// MergedInto is the survivor this patient was merged into; its
	// identifiers then resolve to the survivor (following chains).
	MergedInto string   `json:"merged_into,omitempty"`
	Links      []string `json:"links,omitempty"` // patients linked (A24), not merged
	// Applied is, per source-of-truth field, the event time of the last
	// update applied, for rules that require newer updates.
	Applied map[string]time.Time `json:"applied,omitempty"`
	// Values is, per field, a fingerprint of the value applied then
	// (ownership.Fingerprint): a non-owner repeating it is not updating.
	Values  map[string]string `json:"values,omitempty"`
	History []Event           `json:"history"`
}

// maxHistory bounds a patient's history; the oldest events go first.
const maxHistory = 100

func (p *PatientEntry) record(e Event) {
	p.History = append(p.History, e)
	if n := len(p.History) - maxHistory; n > 0 {
		p.History = p.History[n:]
	}
}

const (
	identifierPrefix = "identifier/"
	patientPrefix    = "patient/"
)

// Index is the patient index in memory. Changes are pending until the
// transaction that wrote them commits (stages.TxnState).
//
// Committed entries are held as their JSON, the most compact form of a
// record read for one patient in thousands; the recently read ones are
// also held decoded (hot), so that a known patient's next message costs
// no JSON. Every read returns a copy, which the caller may change.
type Index struct {
	mu        sync.Mutex
	committed map[string][]byte
	pending   map[string]Change // the open transaction's
	hot       map[string]any    // decoded committed entries, at most hotEntries
}

// hotEntries bounds the decoded cache: a hospital's active patients of
// the moment, not all it has ever seen. When full it starts again, which
// costs the next reads their JSON and nothing else.
const hotEntries = 8192

var _ stages.TxnState = (*Index)(nil)

// New returns an empty index.
func New() *Index {
	return &Index{committed: map[string][]byte{}, pending: map[string]Change{}, hot: map[string]any{}}
}

// lookup is key's entry, the open transaction's if it changed it. The
// caller copies it before handing it out.
func lookup[T any](x *Index, key string) (*T, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c, ok := x.pending[key]; ok {
		e, ok := c.entry.(*T)
		return e, ok && e != nil
	}
	if e, ok := x.hot[key].(*T); ok {
		return e, true
	}
	b, ok := x.committed[key]
	if !ok {
		return nil, false
	}
	e, ok := decode(key, b).(*T)
	if !ok || e == nil {
		return nil, false
	}
	if len(x.hot) >= hotEntries {
		clear(x.hot)
	}
	x.hot[key] = e
	return e, true
}

// Identifier returns a copy of id's entry.
func (x *Index) Identifier(id string) (*IdentifierEntry, bool) {
	e, ok := lookup[IdentifierEntry](x, identifierPrefix+id)
	if !ok {
		return nil, false
	}
	c := *e
	c.Sources = slices.Clone(e.Sources)
	return &c, true
}

// Patient returns a copy of key's entry.
func (x *Index) Patient(key string) (*PatientEntry, bool) {
	e, ok := lookup[PatientEntry](x, patientPrefix+key)
	if !ok {
		return nil, false
	}
	return e.clone(), true
}

func (p *PatientEntry) clone() *PatientEntry {
	c := *p
	c.Identifiers, c.Links, c.History = slices.Clone(p.Identifiers), slices.Clone(p.Links), slices.Clone(p.History)
	c.Applied, c.Values = maps.Clone(p.Applied), maps.Clone(p.Values)
	return &c
}

// maxChain bounds how many merges Resolve follows: a cycle (A into B, B
// into A, which careflow refuses but a hand-edited topic could hold) must
// not hang the stage.
const maxChain = 32

// Resolve follows key's merges to the patient that survives: A merged into
// B, then B into C, resolves A to C.
func (x *Index) Resolve(key string) string {
	for range maxChain {
		p, ok := x.Patient(key)
		if !ok || p.MergedInto == "" || p.MergedInto == key {
			return key
		}
		key = p.MergedInto
	}
	return key
}

// Change is a change to the index, decided but not yet made: Apply makes
// it, and its Record goes among the stage's outputs, in one transaction.
type Change struct {
	key    string
	value  []byte
	entry  any // value decoded: what the index holds
	Record stages.Envelope
}

// change is the change setting key to v, which it takes: the caller must
// not change v afterwards.
func change(key string, v any, h stages.Headers) (Change, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Change{}, fmt.Errorf("patientindex: encode %s: %w", key, err)
	}
	return Change{key: key, value: b, entry: v, Record: stages.Envelope{Topic: topics.Patients, Key: []byte(key), Value: b, Headers: h.Clone()}}, nil
}

// Apply makes changes in the open transaction.
func (x *Index) Apply(changes ...Change) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range changes {
		x.pending[c.key] = c
	}
}

// Commit implements stages.TxnState.
func (x *Index) Commit() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, c := range x.pending {
		delete(x.hot, k)
		if c.value == nil {
			delete(x.committed, k)
			continue
		}
		x.committed[k] = c.value
		if len(x.hot) < hotEntries {
			x.hot[k] = c.entry // just written: read again soon
		}
	}
	clear(x.pending)
}

// Abort implements stages.TxnState.
func (x *Index) Abort() {
	x.mu.Lock()
	defer x.mu.Unlock()
	clear(x.pending)
}

// Patients is every patient the index holds, merged ones too.
func (x *Index) Patients() []*PatientEntry {
	x.mu.Lock()
	keys := make([]string, 0, len(x.committed))
	for k := range x.committed {
		if strings.HasPrefix(k, patientPrefix) {
			keys = append(keys, strings.TrimPrefix(k, patientPrefix))
		}
	}
	x.mu.Unlock()
	var out []*PatientEntry
	for _, k := range keys {
		if p, ok := x.Patient(k); ok {
			out = append(out, p)
		}
	}
	return out
}

// Len is how many identifiers and patients the index holds.
func (x *Index) Len() (identifiers, patients int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k := range x.committed {
		if strings.HasPrefix(k, identifierPrefix) {
			identifiers++
		} else {
			patients++
		}
	}
	return identifiers, patients
}

// Load replaces the index with careflow.patients as committed, every
// partition of it. A missing topic loads nothing.
func (x *Index) Load(ctx context.Context, opts []kgo.Opt) error {
	loaded, err := read(ctx, opts)
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.committed = loaded
	clear(x.pending)
	clear(x.hot)
	return nil
}

// decode is the entry a record of key holds; nil for a tombstone or a
// value that is not one careflow writes.
func decode(key string, b []byte) any {
	if b == nil {
		return nil
	}
	var e any
	switch {
	case strings.HasPrefix(key, identifierPrefix):
		e = new(IdentifierEntry)
	case strings.HasPrefix(key, patientPrefix):
		e = new(PatientEntry)
	default:
		return nil
	}
	if json.Unmarshal(b, e) != nil {
		return nil
	}
	return e
}

// read reads careflow.patients to its end: the last value of every key.
func read(ctx context.Context, opts []kgo.Opt) (map[string][]byte, error) {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("patientindex: %w", err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics.Patients)
	adm.Close()
	if err != nil {
		return nil, fmt.Errorf("patientindex: list %s: %w", topics.Patients, err)
	}
	var parts []int32
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			parts = append(parts, o.Partition)
		}
	})
	loaded := map[string][]byte{}
	err = stages.ReadToEnd(ctx, opts, topics.Patients, parts, kgo.NewOffset().AtStart(), func(r *kgo.Record) {
		if r.Value == nil {
			delete(loaded, string(r.Key)) // a tombstone
			return
		}
		loaded[string(r.Key)] = r.Value
	})
	if err != nil {
		return nil, fmt.Errorf("patientindex: load %s: %w", topics.Patients, err)
	}
	return loaded, nil
}

// Snapshot reads careflow.patients as an Index, for tools (careflow
// patients show) that are not the stage.
func Snapshot(ctx context.Context, opts []kgo.Opt) (*Index, error) {
	x := New()
	return x, x.Load(ctx, opts)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Known is what the index knows of a patient's source-of-truth fields
// (ownership.Known): when each was last applied and a fingerprint of its
// value then, never the value.
type Known struct{ p *PatientEntry }

// Last is when field was last applied.
func (k Known) Last(field string) (time.Time, bool) {
	if k.p == nil {
		return time.Time{}, false
	}
	t, ok := k.p.Applied[field]
	return t, ok
}

// Fingerprint is the fingerprint of field's value last applied.
func (k Known) Fingerprint(field string) (string, bool) {
	if k.p == nil {
		return "", false
	}
	v, ok := k.p.Values[field]
	return v, ok
}

// Known is d's patient's fields as d leaves them (a new patient has
// none). A nil index knows none.
func (x *Index) Known(d *Decision) Known {
	if x == nil || d.Key == "" {
		return Known{}
	}
	return Known{x.working(d)}
}

// SetApplied records, on d's patient as a change among d's, the event
// time (applied) and value fingerprint of each field an update applied.
// A field's time only moves forward.
func (x *Index) SetApplied(d *Decision, applied map[string]time.Time, fingerprints map[string]string, h stages.Headers) error {
	if x == nil || d.Key == "" || len(applied)+len(fingerprints) == 0 {
		return nil
	}
	p := x.working(d)
	if p == nil {
		p = &PatientEntry{Key: d.Key}
	}
	changed := false
	for f, t := range applied {
		if old, ok := p.Applied[f]; ok && !t.After(old) {
			continue
		}
		if p.Applied == nil {
			p.Applied = map[string]time.Time{}
		}
		p.Applied[f] = t
		changed = true
	}
	for f, v := range fingerprints {
		if t, timed := applied[f]; timed && t.Before(p.Applied[f]) {
			continue // an older update: the newer value stands
		}
		if p.Values[f] != v {
			if p.Values == nil {
				p.Values = map[string]string{}
			}
			p.Values[f] = v
			changed = true
		}
	}
	if !changed {
		return nil
	}
	c, err := change(patientPrefix+d.Key, p, h)
	if err != nil {
		return err
	}
	d.Changes = slices.DeleteFunc(d.Changes, func(o Change) bool { return o.key == c.key })
	d.Changes = append(d.Changes, c)
	return nil
}

// working is d's patient entry as d's changes leave it, else as the index
// holds it.
func (x *Index) working(d *Decision) *PatientEntry {
	for _, c := range d.Changes {
		if p, ok := c.entry.(*PatientEntry); ok && c.key == patientPrefix+d.Key {
			return p.clone()
		}
	}
	p, _ := x.Patient(d.Key)
	return p
}
