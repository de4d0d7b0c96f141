package hl7v2

import (
	"bytes"
	"math"
	"strconv"
)

// Message is a parsed HL7 v2 message: the bytes as received plus the offsets
// of its segments. Fields are located on demand, so a Message costs one
// allocation for up to inlineSegs segments whatever its size.
type Message struct {
	data   []byte
	d      Delimiters
	segs   []span
	inline [inlineSegs]span
}

// span is one segment's bytes: data[start:end], without its terminator.
// int32 halves the index (Parse rejects inputs of 2 GiB or more), which
// matters: the Message is allocated per message and its size is GC work.
type span struct{ start, end int32 }

// inlineSegs covers a typical ADT or ORU without a second allocation.
const inlineSegs = 48

// Parse indexes one HL7 v2 message. It does not copy data: the Message and
// every Field, Segment and GetRaw result alias it, so the caller must not
// modify data afterwards.
//
// Parse accepts: a leading UTF-8 BOM or MLLP start byte (0x0b), trailing
// 0x1c/blank lines/whitespace; CR, LF or CRLF terminators in any mix;
// segments with no fields; any delimiters MSH-1/MSH-2 declare. A line that
// does not start with a segment ID and contains no field separator is taken
// as text continuing the previous segment (a line break the sender failed
// to escape). Errors are *ParseError with a stable Code: hl7.empty,
// hl7.no_msh, hl7.bad_encoding, hl7.truncated, hl7.bad_segment, hl7.batch.
func Parse(data []byte) (*Message, error) {
	data = trimFraming(data)
	if len(data) == 0 {
		return nil, perr(CodeEmpty, "", "no HL7 content")
	}
	if len(data) >= math.MaxInt32 {
		return nil, perr(CodeTooLarge, "", "message is 2 GiB or larger")
	}
	if !bytes.HasPrefix(data, mshID) {
		if bytes.HasPrefix(data, []byte("FHS")) || bytes.HasPrefix(data, []byte("BHS")) {
			return nil, perr(CodeBatch, "segment 1", "input is a batch file (FHS/BHS); split it with SplitBatch")
		}
		return nil, perr(CodeNoMSH, "segment 1", "message does not start with an MSH segment")
	}
	d, err := mshDelims(data)
	if err != nil {
		return nil, err
	}
	// Field by field: a composite literal of this size is built on the
	// stack and copied, which costs as much as the whole scan.
	m := new(Message)
	m.data, m.d = data, d
	m.segs = m.inline[:0]
	var sc lineScanner
	sc.init(data)
	for {
		start, end, ok := sc.next()
		if !ok {
			break
		}
		line := data[start:end]
		if isBlank(line) {
			continue
		}
		kind := segmentID(line, d.Field)
		if kind == idBad && sc.hasCR && sc.prevBareLF {
			// In a CR-terminated message a bare LF is a line break the
			// sender did not escape, whatever follows it.
			kind = idContinuation
		}
		switch kind {
		case idOK:
			if len(m.segs) > 0 && isEnvelope(line, d.Field) {
				return nil, perr(CodeBatch, "segment "+strconv.Itoa(len(m.segs)+1), "input holds more than one message; split it with SplitBatch")
			}
			m.segs = append(m.segs, span{int32(start), int32(end)})
		case idContinuation:
			if len(m.segs) == 0 {
				return nil, perr(CodeNoMSH, "segment 1", "message does not start with an MSH segment")
			}
			if len(m.segs) == 1 {
				// The MSH holds no free text: a line break in it would put
				// line breaks into the type, control id or version.
				return nil, perr(CodeBadSegment, "segment 2", "line after the MSH does not start with a segment ID (the MSH cannot continue on another line)")
			}
			m.segs[len(m.segs)-1].end = int32(end)
		default:
			return nil, perr(CodeBadSegment, "segment "+strconv.Itoa(len(m.segs)+1), "line does not start with a three-character segment ID")
		}
	}
	if n := m.segs[0].numFieldsRaw(data, d.Field); n < 8 {
		// MSH-1 is the separator itself, so 8 separators-delimited parts
		// reach MSH-9.
		return nil, perr(CodeTruncated, "MSH-9", "MSH ends before the message type")
	}
	return m, nil
}

var mshID = []byte("MSH")

// mshDelims reads MSH-1 and MSH-2 from the start of data.
func mshDelims(data []byte) (Delimiters, error) {
	if len(data) < 4 || data[3] == '\r' || data[3] == '\n' {
		return Delimiters{}, perr(CodeBadEncoding, "MSH-1", "MSH has no field separator")
	}
	sep := data[3]
	enc := data[4:]
	for i, c := range enc {
		if c == sep || c == '\r' || c == '\n' {
			enc = enc[:i]
			break
		}
	}
	if !delimOK(sep) {
		return Delimiters{}, perr(CodeBadEncoding, "MSH-1", "field separator is alphanumeric, a space or a line break")
	}
	d, ok := delimsFrom(sep, enc)
	if !ok {
		return Delimiters{}, perr(CodeBadEncoding, "MSH-2", "encoding characters must be 3 to 5 distinct non-alphanumeric characters, none equal to MSH-1")
	}
	return d, nil
}

// trimFraming removes what transports leave around a message: a UTF-8 BOM,
// MLLP start/end bytes, NULs, leading whitespace and trailing line breaks.
func trimFraming(b []byte) []byte {
	for len(b) > 0 {
		switch {
		case bytes.HasPrefix(b, bom):
			b = b[3:]
		case isSpaceByte(b[0]) || b[0] == 0x0b || b[0] == 0:
			b = b[1:]
		default:
			goto end
		}
	}
end:
	return trimTail(b)
}

// trimTail removes the line breaks, MLLP bytes and NULs that end b.
// Trailing spaces stay: they may belong to the last field (a
// whitespace-only last line is skipped as blank by Parse).
func trimTail(b []byte) []byte {
	for len(b) > 0 {
		c := b[len(b)-1]
		if c != '\r' && c != '\n' && c != 0x1c && c != 0x0b && c != 0 {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

var bom = []byte{0xef, 0xbb, 0xbf}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isBlank(line []byte) bool {
	for _, c := range line {
		if !isSpaceByte(c) && c != 0x1c && c != 0x0b && c != 0 {
			return false
		}
	}
	return true
}

type idKind int

const (
	idOK idKind = iota
	idContinuation
	idBad
)

// segmentID classifies a line: a segment (three upper-case letters or
// digits, starting with a letter, then a field separator or the end), text
// continuing the previous segment (no field separator at all), or garbage.
func segmentID(line []byte, sep byte) idKind {
	if len(line) >= 3 && isIDLead(line[0]) && isIDChar(line[1]) && isIDChar(line[2]) && (len(line) == 3 || line[3] == sep) {
		return idOK
	}
	if bytes.IndexByte(line, sep) < 0 {
		return idContinuation
	}
	return idBad
}

func isIDLead(c byte) bool { return c >= 'A' && c <= 'Z' }
func isIDChar(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

// numFieldsRaw counts field separators in the segment.
func (s span) numFieldsRaw(data []byte, sep byte) int {
	return bytes.Count(data[s.start:s.end], []byte{sep})
}

// lineScanner yields the lines of data split at CR, LF or CRLF. It keeps
// the next CR and LF positions so that a message using only one of them is
// still scanned once, with bytes.IndexByte's vectorised search.
type lineScanner struct {
	data     []byte
	pos      int
	nextCR   int
	nextLF   int
	finished bool
	// hasCR says the data uses CR at all; prevBareLF that the line just
	// returned was ended by an LF not preceded by CR.
	hasCR, prevBareLF, bareLF bool
}

func (sc *lineScanner) init(data []byte) {
	sc.data = data
	sc.pos = 0
	sc.nextCR = indexFrom(data, 0, '\r')
	sc.nextLF = indexFrom(data, 0, '\n')
	sc.hasCR = sc.nextCR < len(data)
}

func indexFrom(data []byte, from int, c byte) int {
	i := bytes.IndexByte(data[from:], c)
	if i < 0 {
		return len(data)
	}
	return from + i
}

// next returns the bounds of the next line, without its terminator.
func (sc *lineScanner) next() (start, end int, ok bool) {
	if sc.finished {
		return 0, 0, false
	}
	start = sc.pos
	sc.prevBareLF, sc.bareLF = sc.bareLF, false
	if sc.nextCR < start {
		sc.nextCR = indexFrom(sc.data, start, '\r')
	}
	if sc.nextLF < start {
		sc.nextLF = indexFrom(sc.data, start, '\n')
	}
	end = min(sc.nextCR, sc.nextLF)
	if end >= len(sc.data) {
		sc.finished = true
		return start, len(sc.data), true
	}
	sc.pos = end + 1
	sc.bareLF = sc.data[end] == '\n'
	if sc.data[end] == '\r' && sc.pos < len(sc.data) && sc.data[sc.pos] == '\n' {
		sc.pos++
	}
	return start, end, true
}

// Delimiters returns the delimiters declared in MSH-1 and MSH-2.
func (m *Message) Delimiters() Delimiters { return m.d }

// Bytes returns the message as parsed: the input without BOM, MLLP framing
// bytes or surrounding blank lines. It aliases the caller's data.
func (m *Message) Bytes() []byte { return m.data }

// Segments returns every segment in order.
func (m *Message) Segments() []Segment {
	out := make([]Segment, len(m.segs))
	for i, s := range m.segs {
		out[i] = m.seg(s)
	}
	return out
}

// NumSegments returns the number of segments.
func (m *Message) NumSegments() int { return len(m.segs) }

// SegmentAt returns the i-th segment, 1-based; ok is false when out of range.
func (m *Message) SegmentAt(i int) (Segment, bool) {
	if i < 1 || i > len(m.segs) {
		return Segment{}, false
	}
	return m.seg(m.segs[i-1]), true
}

// Segment returns the first segment named name.
func (m *Message) Segment(name string) (Segment, bool) {
	return m.nthSegment(name, 1)
}

// SegmentsNamed returns every segment named name, in order.
func (m *Message) SegmentsNamed(name string) []Segment {
	var out []Segment
	for _, s := range m.segs {
		if m.named(s, name) {
			out = append(out, m.seg(s))
		}
	}
	return out
}

func (m *Message) nthSegment(name string, n int) (Segment, bool) {
	for _, s := range m.segs {
		if m.named(s, name) {
			if n--; n == 0 {
				return m.seg(s), true
			}
		}
	}
	return Segment{}, false
}

func (m *Message) named(s span, name string) bool {
	b := m.data[s.start:s.end]
	return len(b) >= len(name) && string(b[:len(name)]) == name && (len(b) == len(name) || b[len(name)] == m.d.Field)
}

func (m *Message) seg(s span) Segment {
	b := m.data[s.start:s.end]
	return Segment{b: b, d: m.d, msh: len(b) >= 3 && b[0] == 'M' && b[1] == 'S' && b[2] == 'H'}
}

// isEnvelope reports whether line starts another message or a batch
// envelope: MSH, FHS, BHS, BTS or FTS.
func isEnvelope(line []byte, sep byte) bool {
	if len(line) > 3 && line[3] != sep {
		return false
	}
	switch string(line[:3]) {
	case "MSH", "FHS", "BHS", "BTS", "FTS":
		return true
	}
	return false
}
