// This file fuzzes SplitBatch, which unwraps batch files (FHS/BHS ...
// BTS/FTS) and concatenated messages.

package hl7v2

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// FuzzSplitBatch: SplitBatch never panics or modifies its input; its
// errors are *ParseError (hl7.empty, hl7.no_msh or hl7.bad_segment); the
// messages it returns alias the input, in order and without overlap, each
// starting at an MSH, and Parse never finds a second message (hl7.batch)
// in one of them; together they hold every non-blank line of the input
// but the envelope lines (FHS, BHS, BTS, FTS). A single message Parse
// accepts comes back whole, as the same segments.
//
// SplitBatch and Parse agree on lines that continue a segment: a line
// beginning "MSH-9 was wrong" or "FTS-positive" after an unescaped line
// break in an OBX is text, not a boundary (the two seeds below).
func FuzzSplitBatch(f *testing.F) {
	for _, data := range messageSeeds(f) {
		f.Add(data)
	}
	msh := "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5\r"
	f.Add([]byte("FHS|^~\\&\rBHS|^~\\&\r" + msh + "PID|1\r" + msh + "PID|2\rBTS|2\rFTS|1\r"))
	f.Add([]byte("\xef\xbb\xbf\x0b" + msh + "\n\n" + msh + "\x1c\r"))
	f.Add([]byte("BHS|^~\\&\rPID|1\r" + msh))
	f.Add([]byte("MSH#^~\\&#A\rMSH|^~\\&|B\rMSH"))
	f.Add([]byte(msh + "OBX|1|TX|N||see note\nMSH-9 was wrong in the last feed\rNTE|1||x"))
	f.Add([]byte(msh + "OBX|1|TX|N||line one\nFTS-positive culture\rOBX|2|TX|N||y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		msgs, err := SplitBatch(data)
		if !bytes.Equal(data, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || (pe.Code != CodeEmpty && pe.Code != CodeNoMSH && pe.Code != CodeBadSegment) {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatal("no messages and no error")
		}
		next := 0
		var got [][]byte
		for i, msg := range msgs {
			off := cap(data) - cap(msg)
			if len(msg) == 0 || off < next || off+len(msg) > len(data) || &data[off] != &msg[0] {
				t.Fatalf("message %d (%d bytes) does not alias the input after byte %d", i, len(msg), next)
			}
			next = off + len(msg)
			if !bytes.HasPrefix(msg, mshID) || len(msg) > 3 && !delimOK(msg[3]) && msg[3] != '\r' && msg[3] != '\n' {
				t.Fatalf("message %d does not start with an MSH: %q", i, msg[:min(len(msg), 8)])
			}
			if _, err := Parse(msg); err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Code == CodeBatch || pe.Code == CodeEmpty || pe.Code == CodeNoMSH {
					t.Fatalf("message %d of the batch: %v\n%q", i, err, msg)
				}
			}
			got = append(got, nonBlankLines(msg)...)
		}
		var want [][]byte
		var sep byte // the field separator of the message the line is in
		for _, l := range nonBlankLines(trimFraming(data)) {
			switch {
			case isBatchEnvelope(l, sep):
				sep = 0
			case len(l) > 3 && string(l[:3]) == "MSH" && delimOK(l[3]) && (sep == 0 || l[3] == sep):
				sep = l[3]
				want = append(want, l)
			default:
				want = append(want, l)
			}
		}
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("messages hold lines\n%q\nthe input holds\n%q", got, want)
		}

		m, err := Parse(data)
		if err != nil {
			return
		}
		if len(msgs) != 1 {
			t.Fatalf("Parse reads one message, SplitBatch %d: %q", len(msgs), msgs)
		}
		one, err := Parse(msgs[0])
		if err != nil {
			t.Fatalf("Parse accepts the input but not the message SplitBatch returns: %v", err)
		}
		if !slices.EqualFunc(m.Segments(), one.Segments(), func(a, b Segment) bool { return bytes.Equal(a.Raw(), b.Raw()) }) {
			t.Fatalf("segments differ after SplitBatch:\n%q\n%q", m.Bytes(), one.Bytes())
		}
	})
}

// nonBlankLines splits b at every CR and LF, dropping blank lines.
func nonBlankLines(b []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.FieldsFunc(b, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if !isBlank(l) {
			out = append(out, l)
		}
	}
	return out
}

// isBatchEnvelope reports whether line is an FHS, BHS, BTS or FTS segment
// as SplitBatch reads one, inside a message whose field separator is sep
// (0 outside any).
func isBatchEnvelope(line []byte, sep byte) bool {
	if len(line) < 3 || len(line) > 3 && (!delimOK(line[3]) || sep != 0 && line[3] != sep) {
		return false
	}
	switch string(line[:3]) {
	case "FHS", "BHS", "BTS", "FTS":
		return true
	}
	return false
}
