package hl7v2

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// fuzzPaths are read from every message Parse accepts; none may panic.
var fuzzPaths = []string{"MSH-1", "MSH-2", "MSH-2.3", "MSH-9", "MSH-9.2", "MSH-12.1", "MSH-18[2]", "PID-3", "PID-3[2].4.1",
	"PID-5.1.1", "OBX[2]-5", "OBX[9999]-5", "ZZZ-1", "EVN-1", "NTE-3[3]", "PID-999", "MSA-1", "ERR-1.4.2"}

func FuzzParse(f *testing.F) {
	for _, file := range corpusFiles(f) {
		data, err := os.ReadFile(filepath.Join(corpusDir, file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(oru))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		h, d := PeekHeader(data)
		_ = BuildACK(h, d, AckAR, ACKOptions{ControlID: "X", Errors: []AckError{{Code: "207", Location: "MSH-9"}}})
		_, _ = SplitBatch(data)
		if msgs, err := SplitFile(data); err == nil {
			for _, m := range msgs {
				if len(m) < 3 || string(m[:3]) != "MSH" || m[len(m)-1] != '\r' {
					t.Fatalf("SplitFile gave %q, not an MSH message ending in CR", m)
				}
			}
		}
		_, _ = ParseACK(data)
		m, err := Parse(data)
		if !bytes.Equal(data, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		for _, p := range fuzzPaths {
			s := m.Get(p)
			raw := m.GetRaw(p)
			if d := m.Delimiters(); d.Escape != 0 && bytes.IndexByte(raw, d.Escape) < 0 && p != "MSH-2" && s != string(raw) {
				t.Fatalf("Get(%s) = %q differs from raw %q without escapes", p, s, raw)
			}
		}
		for _, s := range m.Segments() {
			for i := 0; i <= s.NumFields()+1; i++ {
				f := s.Field(i)
				_ = f.String()
				for r := 1; r <= f.Reps(); r++ {
					_ = f.Rep(r).Component(2).Sub(2).String()
				}
			}
		}
		hdr := m.Header()
		b := NewBuilder(m.Delimiters())
		b.MSH(hdr)
		again, err := Parse(b.Bytes())
		if err != nil {
			t.Fatalf("rebuilt header %q does not parse: %v", b.Bytes(), err)
		}
		if got := again.Header(); got.ControlID != hdr.ControlID || got.MessageType != hdr.MessageType || got.Version != hdr.Version {
			t.Fatalf("rebuilt header %+v, want %+v", got, hdr)
		}
		ack := BuildACK(hdr, m.Delimiters(), AckAE, ACKOptions{ControlID: "A1", Errors: []AckError{{Code: "101", Location: "PID-3[2].1"}}})
		a, err := ParseACK(ack)
		if err != nil || a.Code != AckAE || a.ControlID != hdr.ControlID {
			t.Fatalf("ACK round trip: %+v, %v\n%q", a, err, ack)
		}
	})
}

func FuzzUnescape(f *testing.F) {
	for _, s := range []string{`a\F\b`, `\X0D0A\`, `\.br\`, `\.sp3\`, `\\\`, `\Zx\`, `\`, `x\P\`, "plain", "multi\nline"} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, truncation bool) {
		d := DefaultDelimiters
		if truncation {
			d.Truncation = '#'
		}
		_ = Unescape(nil, data, d)
		_ = Unescape(nil, data, Delimiters{'|', '^', '~', 0, 0, 0})
		// Escape then Unescape returns any byte string unchanged.
		s := string(data)
		if back := string(Unescape(nil, Escape(nil, s, d), d)); back != s {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
	})
}
