// This file fuzzes Escape with any delimiters a message may declare, on
// its own and through Builder and Parse.

package hl7v2

import (
	"bytes"
	"testing"
)

// FuzzEscape: for any value and any delimiters Parse would accept
// (MSH-1 and a three- to five-character MSH-2), Escape appends to dst,
// Unescape gives the value back, and the escaped form holds no delimiter
// but the escape character and no byte that ends a segment or an MLLP
// frame (CR, LF, NUL, 0x0b, 0x1c). A value set with Builder.Set, at
// field, component, subcomponent or repetition level, or as MSH-10, is
// what Parse and Get return.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", `a\F\b`, "a|b^c~d\\e&f#g", "line\nbreak\r\n", "\x00\x0b\x1c", `\.br\`, "x.y", "~~~", "émigré 漢字"} {
		f.Add(s, []byte("|^~\\&"))
		f.Add(s, []byte("#^~\\&*"))
	}
	f.Add("a.b\nc", []byte(".^~\\&"))
	f.Add("1*2%3$4!5@", []byte("*%$!@"))
	f.Add("no subcomponents & here", []byte("|^~\\"))
	f.Fuzz(func(t *testing.T, value string, delims []byte) {
		if len(delims) < 4 {
			return
		}
		d, ok := delimsFrom(delims[0], delims[1:])
		if !ok {
			return
		}
		esc := Escape(nil, value, d)
		if got := string(Unescape(nil, esc, d)); got != value {
			t.Fatalf("delimiters %q: %q escaped %q unescaped %q", delims, value, esc, got)
		}
		if withDst := Escape([]byte("dst"), value, d); string(withDst) != "dst"+string(esc) {
			t.Fatalf("Escape with a dst gave %q, want %q", withDst, "dst"+string(esc))
		}
		for _, c := range []byte{d.Field, d.Component, d.Repetition, d.Subcomponent, d.Truncation, '\r', '\n', 0, 0x0b, 0x1c} {
			if c != 0 && bytes.IndexByte(esc, c) >= 0 || c == 0 && bytes.IndexByte(esc, 0) >= 0 {
				t.Fatalf("delimiters %q: %q escaped %q holds byte %q", delims, value, esc, c)
			}
		}

		b := NewBuilder(d)
		if b.Delimiters() != d {
			t.Fatalf("Builder changed delimiters %+v to %+v", d, b.Delimiters())
		}
		b.MSH(Header{MessageType: "ZZZ", TriggerEvent: "Z01", ControlID: value, Version: "2.5"})
		zzz := b.Segment("ZZZ").Set("1", value).Set("2.2", value).Set("4[2]", value)
		paths := []string{"ZZZ-1", "ZZZ-2.2", "ZZZ-4[2]"}
		if d.Subcomponent != 0 {
			zzz.Set("3.2.2", value)
			paths = append(paths, "ZZZ-3.2.2")
		}
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		msg := b.Bytes()
		m, err := Parse(msg)
		if err != nil {
			t.Fatalf("built message does not parse: %v\n%q", err, msg)
		}
		if m.Delimiters() != d || m.NumSegments() != 2 {
			t.Fatalf("built message parses with %+v and %d segments\n%q", m.Delimiters(), m.NumSegments(), msg)
		}
		if got := m.Header().ControlID; got != value {
			t.Fatalf("MSH-10 %q came back as %q\n%q", value, got, msg)
		}
		for _, p := range paths {
			if got := m.Get(p); got != value {
				t.Fatalf("%s: %q came back as %q\n%q", p, value, got, msg)
			}
		}
	})
}
