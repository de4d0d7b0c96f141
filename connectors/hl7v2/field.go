package hl7v2

import "bytes"

// Segment is one segment of a message: a view of its bytes, found fields
// on demand. The zero Segment has no name and no fields.
type Segment struct {
	b   []byte
	d   Delimiters
	msh bool
}

// Name returns the segment ID ("PID", "ZPI").
func (s Segment) Name() string {
	if i := bytes.IndexByte(s.b, s.d.Field); i >= 0 {
		return string(s.b[:i])
	}
	return string(s.b)
}

// Raw returns the segment's bytes without terminator.
func (s Segment) Raw() []byte { return s.b }

// Delimiters returns the delimiters of the segment's message.
func (s Segment) Delimiters() Delimiters { return s.d }

// NumFields returns the number of the last field present, in HL7 numbering
// (an MSH with only MSH-1 and MSH-2 has 2).
func (s Segment) NumFields() int {
	if len(s.b) == 0 {
		return 0
	}
	n := bytes.Count(s.b, []byte{s.d.Field})
	if s.msh && n > 0 {
		n++ // MSH-1 is the separator itself
	}
	return n
}

// Field returns field n in HL7 numbering; for MSH, Field(1) is the field
// separator and Field(2) the encoding characters, both returned verbatim.
// A field beyond the end is empty.
func (s Segment) Field(n int) Field {
	if n < 1 || len(s.b) == 0 {
		return Field{d: s.d}
	}
	if s.msh {
		switch {
		case n == 1:
			if len(s.b) < 4 {
				return Field{d: s.d}
			}
			return Field{b: s.b[3:4], d: s.d, lvl: lvlLiteral}
		case n == 2:
			f := s.field(1)
			f.lvl = lvlLiteral
			return f
		}
		n--
	}
	return s.field(n)
}

// field returns the n-th separator-delimited part after the segment ID.
func (s Segment) field(n int) Field {
	b := s.b
	sep := s.d.Field
	i := indexSep(b, sep)
	for ; i >= 0 && n > 1; n-- {
		b = b[i+1:]
		i = indexSep(b, sep)
	}
	if i < 0 {
		return Field{d: s.d}
	}
	b = b[i+1:]
	if j := indexSep(b, sep); j >= 0 {
		b = b[:j]
	}
	return Field{b: b, d: s.d}
}

// indexSep is bytes.IndexByte tuned for HL7, where the next delimiter is
// usually a few bytes away: a plain loop over the first bytes beats the
// vectorised search's setup cost, which still handles long values.
func indexSep(b []byte, c byte) int {
	const short = 16
	n := min(len(b), short)
	for i := 0; i < n; i++ {
		if b[i] == c {
			return i
		}
	}
	if len(b) <= short {
		return -1
	}
	if j := bytes.IndexByte(b[short:], c); j >= 0 {
		return short + j
	}
	return -1
}

// Get returns the unescaped value at a path relative to the segment: "3",
// "3.1", "3[2].1", "3.4.1". See Message.Get for the syntax.
func (s Segment) Get(path string) string {
	p, ok := parseRelPath(path)
	if !ok {
		return ""
	}
	return s.Field(p.field).at(p).String()
}

// GetRaw is Get without unescaping; it does not allocate.
func (s Segment) GetRaw(path string) []byte {
	p, ok := parseRelPath(path)
	if !ok {
		return nil
	}
	return s.Field(p.field).at(p).Raw()
}

// Field levels: a Field value may stand for a whole field, one repetition,
// a component or a subcomponent; splitting starts at the level below.
const (
	lvlField uint8 = iota
	lvlRep
	lvlComp
	lvlSub
	lvlLiteral // MSH-1 and MSH-2: never split, never unescaped
)

// Field is a view of part of a segment: a whole field (possibly repeating),
// one repetition, a component or a subcomponent. Methods that go deeper
// than the value's level return it for index 1 and empty otherwise, so
// f.Component(1) of a simple value is the value itself.
type Field struct {
	b   []byte
	d   Delimiters
	lvl uint8
}

// Raw returns the bytes as sent, escape sequences intact.
func (f Field) Raw() []byte { return f.b }

// Empty reports whether the value has no bytes. HL7's explicit null ("")
// is not empty; test for it with IsNull.
func (f Field) Empty() bool { return len(f.b) == 0 }

// IsNull reports whether the value is HL7's explicit null, two double
// quotes, which tells a receiver to delete what it holds.
func (f Field) IsNull() bool { return len(f.b) == 2 && f.b[0] == '"' && f.b[1] == '"' }

// String returns the value unescaped (see Unescape). Delimiters inside the
// value (a whole field's ~ and ^, say) are kept as sent.
func (f Field) String() string {
	if f.lvl == lvlLiteral || f.d.Escape == 0 || bytes.IndexByte(f.b, f.d.Escape) < 0 {
		return string(f.b)
	}
	var buf [256]byte
	return string(Unescape(buf[:0], f.b, f.d))
}

// Reps returns the number of repetitions (1 for a present value that does
// not repeat, 0 for an empty one).
func (f Field) Reps() int {
	if len(f.b) == 0 {
		return 0
	}
	if f.lvl != lvlField || f.d.Repetition == 0 {
		return 1
	}
	return bytes.Count(f.b, []byte{f.d.Repetition}) + 1
}

// Rep returns repetition i, 1-based.
func (f Field) Rep(i int) Field {
	if f.lvl != lvlField {
		return f.self(i, f.lvl)
	}
	return Field{b: nth(f.b, f.d.Repetition, i), d: f.d, lvl: lvlRep}
}

// Component returns component i, 1-based, of the first repetition.
func (f Field) Component(i int) Field {
	if f.lvl >= lvlComp {
		return f.self(i, f.lvl)
	}
	if f.lvl == lvlField {
		f = f.Rep(1)
	}
	return Field{b: nth(f.b, f.d.Component, i), d: f.d, lvl: lvlComp}
}

// Sub returns subcomponent i, 1-based, of the first component.
func (f Field) Sub(i int) Field {
	if f.lvl >= lvlSub {
		return f.self(i, f.lvl)
	}
	if f.lvl < lvlComp {
		f = f.Component(1)
	}
	return Field{b: nth(f.b, f.d.Subcomponent, i), d: f.d, lvl: lvlSub}
}

func (f Field) self(i int, lvl uint8) Field {
	if i == 1 {
		return f
	}
	return Field{d: f.d, lvl: lvl}
}

// at walks from a whole field to the repetition, component and
// subcomponent a path names.
func (f Field) at(p path) Field {
	if p.rep > 0 {
		f = f.Rep(p.rep)
	}
	if p.comp > 0 {
		f = f.Component(p.comp)
		if p.sub > 0 {
			f = f.Sub(p.sub)
		}
	}
	return f
}

// nth returns the i-th (1-based) sep-delimited part of b; nil when absent.
// A zero sep means the level is not declared: b is its only part.
func nth(b []byte, sep byte, i int) []byte {
	if i < 1 {
		return nil
	}
	if sep == 0 {
		if i == 1 {
			return b
		}
		return nil
	}
	for ; i > 1; i-- {
		j := indexSep(b, sep)
		if j < 0 {
			return nil
		}
		b = b[j+1:]
	}
	if j := indexSep(b, sep); j >= 0 {
		return b[:j]
	}
	return b
}
