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
	d       Delimiters
	segs    []*SegmentBuilder
	entries []entry // every segment's values, in the order they were set
	vals    []byte  // escaped values of every segment, back to back
	err     error

	// Storage for a typical message, so that building one allocates the
	// Builder and the output and nothing per segment or field.
	segArr   [8]*SegmentBuilder
	inline   [8]SegmentBuilder
	entryArr [48]entry
	valArr   [512]byte
}

// SegmentBuilder sets the fields of one segment of a Builder.
type SegmentBuilder struct {
	b    *Builder
	name string
	msh  bool
	idx  int32 // position among the Builder's segments
}

// entry is one value at a fully specified position; unspecified indexes in
// the path are 1, since "3" and "3[1].1.1" are the same bytes once escaped.
type entry struct {
	seg                   int32
	field, rep, comp, sub int32
	seq                   int32 // order of Set, so that the last Set wins
	off, n                int32 // value in Builder.vals
}

// NewBuilder returns a Builder writing with d. Invalid delimiters (zero,
// duplicated or alphanumeric, or fewer than three encoding characters) are
// replaced by DefaultDelimiters. A d without subcomponent separator, as
// parsed from a three-character MSH-2, is kept: an ACK mirrors the sender.
func NewBuilder(d Delimiters) *Builder {
	if !validDelims(d) {
		d = DefaultDelimiters
	}
	b := &Builder{d: d}
	b.segs, b.entries, b.vals = b.segArr[:0], b.entryArr[:0], b.valArr[:0]
	return b
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
	var sb *SegmentBuilder
	if i := len(b.segs); i < len(b.inline) {
		sb = &b.inline[i]
	} else {
		sb = new(SegmentBuilder)
	}
	*sb = SegmentBuilder{b: b, name: name, msh: name == "MSH", idx: int32(len(b.segs))}
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
	b.entries = append(b.entries, entry{
		seg: sb.idx, field: int32(p.field), rep: int32(max(p.rep, 1)), comp: int32(max(p.comp, 1)), sub: int32(max(p.sub, 1)),
		seq: int32(len(b.entries)), off: int32(off), n: int32(len(b.vals) - off),
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
			sb.b.entries = append(sb.b.entries, sb.b.entryFor(sb.idx, field, i, part))
		}
		if !found {
			break
		}
		value = rest
	}
}

func (b *Builder) entryFor(seg int32, field, comp int, value string) entry {
	off := len(b.vals)
	b.vals = Escape(b.vals, value, b.d)
	return entry{seg: seg, field: int32(field), rep: 1, comp: int32(comp), sub: 1, seq: int32(len(b.entries)), off: int32(off), n: int32(len(b.vals) - off)}
}

// Bytes returns the message written so far, each segment ended by CR.
func (b *Builder) Bytes() []byte {
	es := b.entries
	if !slices.IsSortedFunc(es, entryCmp) {
		slices.SortStableFunc(es, entryCmp)
	}
	out := make([]byte, 0, len(b.segs)*16+len(es)*4+len(b.vals))
	for _, sb := range b.segs {
		n := 0
		for n < len(es) && es[n].seg == sb.idx {
			n++
		}
		out = sb.appendTo(out, es[:n])
		out = append(out, '\r')
		es = es[n:]
	}
	return out
}

// appendTo writes the segment from es, its entries in position order.
func (sb *SegmentBuilder) appendTo(out []byte, es []entry) []byte {
	d := sb.b.d
	out = append(out, sb.name...)
	var curF int32
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
	var curR, curC, curS int32 = 1, 1, 1
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

// entryCmp orders entries by segment and position, then by the order they
// were set.
func entryCmp(a, b entry) int {
	return cmp.Or(cmp.Compare(a.seg, b.seg), cmp.Compare(a.field, b.field), cmp.Compare(a.rep, b.rep),
		cmp.Compare(a.comp, b.comp), cmp.Compare(a.sub, b.sub), cmp.Compare(a.seq, b.seq))
}

func samePos(a, b entry) bool {
	return a.field == b.field && a.rep == b.rep && a.comp == b.comp && a.sub == b.sub
}
