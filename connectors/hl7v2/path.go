package hl7v2

// path is a parsed location such as "OBX[2]-5[1].3.1". Zero means "not
// given" for every index; seg aliases the path string, so parsing does not
// allocate.
type path struct {
	seg    string
	segIdx int // occurrence of the segment, 1-based
	field  int
	rep    int
	comp   int
	sub    int
}

// parsePath parses "SEG[n]-F[r].C.S". Indexes are 1-based and optional from
// [n] on; anything else (zero or negative indexes, junk) is rejected.
func parsePath(s string) (path, bool) {
	var p path
	i := 0
	for i < len(s) && s[i] != '-' && s[i] != '[' {
		i++
	}
	if i == 0 || i == len(s) {
		return p, false
	}
	p.seg = s[:i]
	p.segIdx = 1
	if s[i] == '[' {
		n, j, ok := bracket(s, i)
		if !ok {
			return p, false
		}
		p.segIdx, i = n, j
	}
	if i >= len(s) || s[i] != '-' {
		return p, false
	}
	rel, ok := parseRelPath(s[i+1:])
	if !ok {
		return p, false
	}
	rel.seg, rel.segIdx = p.seg, p.segIdx
	return rel, true
}

// parseRelPath parses the part after the segment: "F[r].C.S".
func parseRelPath(s string) (path, bool) {
	var p path
	var ok bool
	i := 0
	if p.field, i, ok = number(s, 0); !ok {
		return p, false
	}
	if i < len(s) && s[i] == '[' {
		if p.rep, i, ok = bracket(s, i); !ok {
			return p, false
		}
	}
	if i < len(s) {
		if s[i] != '.' {
			return p, false
		}
		if p.comp, i, ok = number(s, i+1); !ok {
			return p, false
		}
	}
	if i < len(s) {
		if s[i] != '.' {
			return p, false
		}
		if p.sub, i, ok = number(s, i+1); !ok {
			return p, false
		}
	}
	return p, i == len(s)
}

// number reads a positive decimal at s[i:]; it returns the value and the
// index after it.
func number(s string, i int) (int, int, bool) {
	n, start := 0, i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if n > 1<<20 {
			return 0, i, false
		}
		n = n*10 + int(s[i]-'0')
		i++
	}
	return n, i, i > start && n > 0
}

// bracket reads "[n]" at s[i:].
func bracket(s string, i int) (int, int, bool) {
	n, j, ok := number(s, i+1)
	if !ok || j >= len(s) || s[j] != ']' {
		return 0, i, false
	}
	return n, j + 1, true
}

// Get returns the unescaped value at path, or "" when the segment, field,
// repetition, component or subcomponent is absent or the path malformed.
//
// Paths: "PID-3" (the whole field, all repetitions, as sent but
// unescaped), "PID-3.1" (component 1 of the first repetition), "PID-3[2].1"
// (of the second), "PID-3[2].4.1" (a subcomponent), "OBX[2]-5" (the second
// OBX), "MSH-9.2". Indexes are 1-based. MSH follows HL7 numbering: MSH-1 is
// the field separator and MSH-2 the encoding characters, both verbatim.
func (m *Message) Get(path string) string {
	f, ok := m.lookup(path)
	if !ok {
		return ""
	}
	return f.String()
}

// GetRaw is Get without unescaping: the bytes as sent, aliasing the
// message. It does not allocate.
func (m *Message) GetRaw(path string) []byte {
	f, ok := m.lookup(path)
	if !ok {
		return nil
	}
	return f.b
}

// Field returns the value at path as a Field, for walking its repetitions
// and components; ok is false when the path is malformed or the segment
// absent.
func (m *Message) Field(path string) (Field, bool) {
	return m.lookup(path)
}

func (m *Message) lookup(s string) (Field, bool) {
	p, ok := parsePath(s)
	if !ok {
		return Field{}, false
	}
	seg, ok := m.nthSegment(p.seg, p.segIdx)
	if !ok {
		return Field{}, false
	}
	return seg.Field(p.field).at(p), true
}
