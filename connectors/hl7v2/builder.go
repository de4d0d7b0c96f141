package hl7v2

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Builder writes a message segment by segment, with CR segment
// terminators. Values given to Set are escaped; the path says where they
// go. Segments are written in the order they were started, fields in path
// order whatever order they were set in, and trailing empty fields,
// repetitions and components are not written.
//
// A malformed path is recorded, not panicked on: check Err before using
// Bytes.
type Builder struct {
	d    Delimiters
	segs []*SegmentBuilder
	vals []byte // escaped values of every segment, back to back
	err  error
}

// SegmentBuilder sets the fields of one segment of a Builder.
type SegmentBuilder struct {
	b       *Builder
	name    string
	msh     bool
	entries []entry
}

// entry is one value at a fully specified position; unspecified indexes in
// the path are 1, since "3" and "3[1].1.1" are the same bytes once escaped.
type entry struct {
	field, rep, comp, sub int
	seq                   int // order of Set, so that the last Set wins
	off, n                int // value in Builder.vals
}

// NewBuilder returns a Builder writing with d. Invalid delimiters (zero,
// duplicated or alphanumeric, or fewer than three encoding characters) are
// replaced by DefaultDelimiters. A d without subcomponent separator, as
// parsed from a three-character MSH-2, is kept: an ACK mirrors the sender.
func NewBuilder(d Delimiters) *Builder {
	if !validDelims(d) {
		d = DefaultDelimiters
	}
	return &Builder{d: d, vals: make([]byte, 0, 512)}
}

func validDelims(d Delimiters) bool {
	var enc [5]byte
	n := 0
	for _, c := range [...]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent, d.Truncation} {
		if c == 0 {
			break
		}
		enc[n] = c
		n++
	}
	_, ok := delimsFrom(d.Field, enc[:n])
	return ok && n >= 3
}

// Delimiters returns the delimiters the Builder writes with.
func (b *Builder) Delimiters() Delimiters { return b.d }

// Err returns the first malformed path given to Set or SetRaw.
func (b *Builder) Err() error { return b.err }

// MSH starts the message header: MSH-1 and MSH-2 from the Builder's
// delimiters, the rest from h. The composite fields MSH-3 to MSH-6 and
// MSH-11 are split at the Builder's component separator (see Header).
func (b *Builder) MSH(h Header) *SegmentBuilder {
	sb := b.Segment("MSH")
	sb.setComposite(3, h.SendingApplication)
	sb.setComposite(4, h.SendingFacility)
	sb.setComposite(5, h.ReceivingApplication)
	sb.setComposite(6, h.ReceivingFacility)
	sb.Set("7", h.DateTime)
	sb.Set("8", h.Security)
	sb.Set("9.1", h.MessageType)
	sb.Set("9.2", h.TriggerEvent)
	sb.Set("9.3", h.MessageStructure)
	sb.Set("10", h.ControlID)
	sb.setComposite(11, h.ProcessingID)
	sb.Set("12", h.Version)
	sb.Set("15", h.AcceptAckType)
	sb.Set("16", h.AppAckType)
	sb.Set("18", h.Charset)
	return sb
}

// Segment starts a segment named name (three characters, e.g. "PID").
func (b *Builder) Segment(name string) *SegmentBuilder {
	sb := &SegmentBuilder{b: b, name: name, msh: name == "MSH"}
	if len(name) != 3 || segmentID([]byte(name), 0) != idOK {
		b.fail(fmt.Errorf("hl7v2 builder: segment ID must be three upper-case letters or digits, got %d bytes", len(name)))
	}
	b.segs = append(b.segs, sb)
	return sb
}

func (b *Builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Set writes value, escaped, at path relative to the segment: "3",
// "3[2].1", "3.4.2". Empty values are not written.
func (sb *SegmentBuilder) Set(path string, value string) *SegmentBuilder {
	return sb.set(path, value, true)
}

// SetRaw writes value as is: the caller has escaped it, or means its
// delimiters ("DOE^JOHN", "A~B").
func (sb *SegmentBuilder) SetRaw(path string, value string) *SegmentBuilder {
	return sb.set(path, value, false)
}

func (sb *SegmentBuilder) set(path, value string, escape bool) *SegmentBuilder {
	p, ok := parseRelPath(path)
	if !ok || (sb.msh && p.field <= 2) {
		sb.b.fail(fmt.Errorf("hl7v2 builder: path %s-%s is malformed or names MSH-1/MSH-2", sb.name, path))
		return sb
	}
	if p.sub > 1 && sb.b.d.Subcomponent == 0 {
		sb.b.fail(fmt.Errorf("hl7v2 builder: path %s-%s names a subcomponent but the delimiters have no subcomponent separator", sb.name, path))
		return sb
	}
	if value == "" {
		return sb
	}
	b := sb.b
	off := len(b.vals)
	if escape {
		b.vals = Escape(b.vals, value, b.d)
	} else {
		b.vals = append(b.vals, value...)
	}
	sb.entries = append(sb.entries, entry{
		field: p.field, rep: max(p.rep, 1), comp: max(p.comp, 1), sub: max(p.sub, 1),
		seq: len(sb.entries), off: off, n: len(b.vals) - off,
	})
	return sb
}

// setComposite writes value's components, split at the component
// separator, each escaped.
func (sb *SegmentBuilder) setComposite(field int, value string) {
	comp := string(sb.b.d.Component)
	for i := 1; value != ""; i++ {
		part, rest, found := strings.Cut(value, comp)
		if part != "" {
			sb.entries = append(sb.entries, sb.b.entryFor(field, i, part, len(sb.entries)))
		}
		if !found {
			break
		}
		value = rest
	}
}

func (b *Builder) entryFor(field, comp int, value string, seq int) entry {
	off := len(b.vals)
	b.vals = Escape(b.vals, value, b.d)
	return entry{field: field, rep: 1, comp: comp, sub: 1, seq: seq, off: off, n: len(b.vals) - off}
}

// Bytes returns the message written so far, each segment ended by CR.
func (b *Builder) Bytes() []byte {
	size := 0
	for _, sb := range b.segs {
		size += 16 + len(sb.entries)*4
	}
	out := make([]byte, 0, size+len(b.vals))
	for _, sb := range b.segs {
		out = sb.appendTo(out)
		out = append(out, '\r')
	}
	return out
}

func (sb *SegmentBuilder) appendTo(out []byte) []byte {
	d := sb.b.d
	out = append(out, sb.name...)
	curF := 0
	if sb.msh {
		out = append(out, d.Field)
		for _, c := range [...]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent, d.Truncation} {
			if c == 0 {
				break
			}
			out = append(out, c)
		}
		curF = 2
	}
	es := sb.entries
	if !slices.IsSortedFunc(es, entryCmp) {
		slices.SortStableFunc(es, entryCmp)
	}
	curR, curC, curS := 1, 1, 1
	for i, e := range es {
		if i+1 < len(es) && samePos(e, es[i+1]) {
			continue // a later Set of the same position wins
		}
		switch {
		case e.field != curF:
			for ; curF < e.field; curF++ {
				out = append(out, d.Field)
			}
			curR, curC, curS = 1, 1, 1
			fallthrough
		case e.rep != curR:
			for ; curR < e.rep; curR++ {
				out = append(out, d.Repetition)
			}
			curC, curS = 1, 1
			fallthrough
		case e.comp != curC:
			for ; curC < e.comp; curC++ {
				out = append(out, d.Component)
			}
			curS = 1
			fallthrough
		default:
			for ; curS < e.sub; curS++ {
				out = append(out, d.Subcomponent)
			}
		}
		out = append(out, sb.b.vals[e.off:e.off+e.n]...)
	}
	if sb.msh {
		// MSH-9 is required in every version and Parse rejects an MSH
		// that ends before it: write the separators even when empty.
		for ; curF < 9; curF++ {
			out = append(out, d.Field)
		}
	}
	return out
}

// entryCmp orders entries by position, then by the order they were set.
func entryCmp(a, b entry) int {
	return cmp.Or(cmp.Compare(a.field, b.field), cmp.Compare(a.rep, b.rep),
		cmp.Compare(a.comp, b.comp), cmp.Compare(a.sub, b.sub), cmp.Compare(a.seq, b.seq))
}

func samePos(a, b entry) bool {
	return a.field == b.field && a.rep == b.rep && a.comp == b.comp && a.sub == b.sub
}
