// This file says where in a message a byte or character that does not
// convert sits, in HL7 terms ("PID-5", "OBX[2]-5"), and checks that a
// parsed message yields only UTF-8.

package hl7v2

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// ValidUTF8 reports whether every value of m reads as UTF-8: the message
// bytes, and what its \Xhh..\ escapes spell, since Unescape writes those
// bytes as they are. Call it after DecodeMessage and Parse, before values
// leave for places that hold only UTF-8 (Avro strings, JSON). The error
// is a *ParseError with CodeBadCharset at the field ("OBX-5").
func (m *Message) ValidUTF8() error {
	if !utf8.Valid(m.data) {
		i := firstInvalidUTF8(m.data)
		return badByte(utf8Def, m.data[:i], i, m.data)
	}
	if !hasHexEscape(m.data, m.d.Escape) {
		return nil
	}
	var buf []byte
	for _, span := range m.segs {
		s := m.seg(span)
		if !hasHexEscape(s.b, m.d.Escape) {
			continue
		}
		for fi := 1; fi <= s.NumFields(); fi++ {
			f := s.Field(fi)
			if f.lvl == lvlLiteral || !hasHexEscape(f.b, m.d.Escape) {
				continue
			}
			buf = Unescape(buf[:0], f.b, m.d)
			if !utf8.Valid(buf) {
				off := int(span.start) + cap(s.b) - cap(f.b)
				return perr(CodeBadCharset, locate(m.data[:off], m.d),
					"a \\X..\\ hex escape spells bytes that are not UTF-8; careflow keeps such escapes as bytes and holds text only as UTF-8")
			}
		}
	}
	return nil
}

// hasHexEscape reports whether b holds an escape character followed by X.
func hasHexEscape(b []byte, esc byte) bool {
	if esc == 0 {
		return false
	}
	for {
		i := bytes.IndexByte(b, esc)
		if i < 0 || i+1 >= len(b) {
			return false
		}
		if b[i+1] == 'X' || b[i+1] == 'x' {
			return true
		}
		b = b[i+1:]
	}
}

// delimitersOf returns the delimiters PeekHeader finds in data.
func delimitersOf(data []byte) Delimiters {
	if seg, ok := peekMSH(data); ok {
		return seg.d
	}
	return DefaultDelimiters
}

// locate returns the HL7 location of the position just after prefix, the
// UTF-8 text of a message up to a bad byte: "PID-5", "OBX[2]-5", "MSH-4",
// "segment N" inside a segment ID, "" before the MSH. MSH-1 and MSH-2
// count as HL7 counts them.
func locate(prefix []byte, d Delimiters) string {
	window := prefix
	if len(window) > 4096 {
		window = window[:4096]
	}
	base := bytes.Index(window, mshID)
	if base < 0 {
		return ""
	}
	text := prefix[base:]
	// Walk back over continuation lines (text the sender did not escape)
	// to the line that starts the segment.
	end, fields := len(text), 0
	start := lineStart(text, end)
	if partialID(text[start:end]) {
		// The bad byte is inside a segment ID ("P?D|"); a short line of
		// other text is the start of a continuation line, handled below.
		return "segment " + fmt.Sprint(countSegments(text[:start], d, "")+1)
	}
	for {
		line := text[start:end]
		fields += bytes.Count(line, []byte{d.Field})
		if segmentID(line, d.Field) == idOK || start == 0 {
			break
		}
		end = start - 1
		start = lineStart(text, end)
	}
	line := text[start:end]
	if len(line) < 3 {
		return "segment 1"
	}
	id := string(line[:3])
	if id == "MSH" && start == 0 {
		return "MSH-" + fmt.Sprint(fields+1)
	}
	n := countSegments(text[:start], d, id) + 1
	if fields == 0 {
		return "segment " + fmt.Sprint(countSegments(text[:start], d, "")+1)
	}
	if n > 1 {
		return fmt.Sprintf("%s[%d]-%d", id, n, fields)
	}
	return fmt.Sprintf("%s-%d", id, fields)
}

// partialID reports whether line could be the first one or two bytes of a
// segment ID.
func partialID(line []byte) bool {
	if len(line) == 0 || len(line) > 2 || !isIDLead(line[0]) {
		return len(line) == 0
	}
	return len(line) == 1 || isIDChar(line[1])
}

// lineStart returns where the line ending at end starts.
func lineStart(text []byte, end int) int {
	if i := bytes.LastIndexAny(text[:end], "\r\n"); i >= 0 {
		return i + 1
	}
	return 0
}

// countSegments counts the segments in text named id, or all with id "".
func countSegments(text []byte, d Delimiters, id string) int {
	n := 0
	var sc lineScanner
	sc.init(text)
	for {
		s, e, ok := sc.next()
		if !ok {
			return n
		}
		line := text[s:e]
		if segmentID(line, d.Field) == idOK && len(line) >= 3 && (id == "" || string(line[:3]) == id) {
			n++
		}
	}
}

// firstInvalidUTF8 returns the offset of the first byte of b that does not
// start a valid UTF-8 sequence; len(b) when there is none.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}
