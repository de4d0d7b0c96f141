package hl7v2

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEncode(t *testing.T) {
	tests := []struct {
		charset, value string
		want           string // the value's bytes in the charset
	}{
		{"8859/1", "Renée", "Ren\xe9e"},
		{"8859/2", "Łukasz", "\xa3ukasz"},
		{"WINDOWS-1252", "12 €", "12 \x80"},
		{"8859/15", "12 €", "12 \xa4"},
		{"8859/1", "Rene\u0301e", "Ren\xe9e"}, // composed first
		{"BIG-5", "弋", "\xa4\x7c"},
		{"GB 18030-2000", "亅", "\x81\x7c"},
		{"SHIFT_JIS", "ソ", "\x83\x5c"},
		{"KS X 1001", "가", "\xb0\xa1"},
		{"ISO IR14", "ｱ", "\xb1"},
		{"ASCII", "Rene", "Rene"},
		{"UNICODE UTF-8", "Renée", "Renée"},
	}
	for _, tc := range tests {
		c, err := DestinationCharset(tc.charset)
		if err != nil {
			t.Fatal(err)
		}
		msg := charsetMsg(c.MSH18(), "PID|1||X1||"+tc.value)
		got, err := c.Encode(msg)
		if err != nil {
			t.Errorf("%s: %v", tc.charset, err)
			continue
		}
		if want := charsetMsg(c.MSH18(), "PID|1||X1||"+tc.want); !bytes.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", tc.charset, got, want)
		}
		back, _, err := DecodeMessage(got, "", "")
		if err != nil {
			t.Errorf("%s: decoding the encoded message: %v", tc.charset, err)
		} else if m, _ := Parse(back); m.Get("PID-5") != strings.ReplaceAll(tc.value, "e\u0301", "é") {
			t.Errorf("%s: round trip PID-5 = %q", tc.charset, m.Get("PID-5"))
		}
	}
	utf := charsetMsg("UNICODE UTF-8", "PID|1||X1||Renée")
	if out, _ := (Charset{}).Encode(utf); &out[0] != &utf[0] {
		t.Error("UTF-8 Encode copied its input")
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		charset, body, code, location string
	}{
		{"8859/1", "PID|1||X1||12 €", CodeUnrepresentable, "PID-5"},
		{"ASCII", "PID|1||X1||Renée", CodeUnrepresentable, "PID-5"},
		{"WINDOWS-1252", "OBX|1|ST|A||a\nOBX|2|ST|B||Łódź", CodeUnrepresentable, "OBX[2]-5"},
		{"BIG-5", "PID|1||X1||x^😀", CodeUnrepresentable, "PID-5"},
		{"8859/7", "NTE|1||\u0080", CodeUnrepresentable, "NTE-3"}, // C1 controls are not written either
		{"8859/1", "PID|1||X1||\xff", CodeBadCharset, "PID-5"},
	}
	for _, tc := range tests {
		c, err := DestinationCharset(tc.charset)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Encode(charsetMsg("", strings.Split(tc.body, "\n")...))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Code != tc.code || pe.Location != tc.location {
			t.Errorf("%s %q: err = %v, want %s at %s", tc.charset, tc.body, err, tc.code, tc.location)
			continue
		}
		if strings.Contains(pe.Msg, "Ren") || strings.Contains(pe.Msg, "€") {
			t.Errorf("message %q quotes text", pe.Msg)
		}
	}
	jp, _ := LookupCharset("ISO IR87")
	if _, err := jp.Encode(charsetMsg("", "PID|1||X1||万")); err == nil {
		t.Error("ISO-2022-JP Encode succeeded; careflow does not write it")
	}
}

func TestValidUTF8(t *testing.T) {
	for _, tc := range []struct {
		name, body, location string
	}{
		{"plain UTF-8", "PID|1||X1||Renée", ""},
		{"hex escape spelling UTF-8", "PID|1||X1||Ren\\XC3A9\\e", ""},
		{"hex escape spelling control bytes", "OBX|1|TX|N||a\\X0D0A\\b", ""},
		{"hex escape spelling Latin-1", "PID|1||X1||Ren\\XE9\\e", "PID-5"},
		{"in the second OBX", "OBX|1|ST|A||x\rOBX|2|ST|B||\\XFF\\", "OBX[2]-5"},
		{"invalid bytes", "PID|1||X1||Ren\xe9e", "PID-5"},
	} {
		m, err := Parse(charsetMsg("", tc.body))
		if err != nil {
			t.Fatal(err)
		}
		err = m.ValidUTF8()
		var pe *ParseError
		switch {
		case tc.location == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.location != "" && (!errors.As(err, &pe) || pe.Code != CodeBadCharset || pe.Location != tc.location):
			t.Errorf("%s: err = %v, want %s at %s", tc.name, err, CodeBadCharset, tc.location)
		}
	}
}

func TestLocate(t *testing.T) {
	d := DefaultDelimiters
	tests := map[string]string{
		"MSH|":                               "MSH-2",
		"MSH|^~\\&|":                         "MSH-3",
		"MSH|^~\\&|A|B|C|D|E||F|G|H|I||||||": "MSH-18",
		"MSH|^~\\&|A\rPID|1||":               "PID-3",
		"MSH|^~\\&|A\r\nPID|1||":             "PID-3",
		"MSH|^~\\&|A\rOBX|1\rOBX|2\rOBX|":    "OBX[3]-1",
		"MSH|^~\\&|A\rOBX|1|TX|||a\nb":       "OBX-5",
		"MSH|^~\\&|A\r\rPID|1":               "PID-1",
		"MSH|^~\\&|A\rPI":                    "segment 2",
		"MSH|^~\\&|A\rOBX|1|TX|||a\nde":      "OBX-5",
		"MSH|^~\\&|A\rOBX|1|TX|||a\n":        "segment 3",
		"MSH|^~\\&|A\rPID":                   "segment 2",
		"garbage":                            "",
		"\x0bMSH|^~\\&|A|":                   "MSH-4",
	}
	for prefix, want := range tests {
		if got := locate([]byte(prefix), d); got != want {
			t.Errorf("locate(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	msg := charsetMsg("8859/1", "PID|1||X1||Renée^Ana", "OBX|1|ST|A||"+strings.Repeat("température ", 100))
	c, _ := DestinationCharset("8859/1")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Encode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDestinationCharsetNoAlloc: renderers look the set up per message.
func TestDestinationCharsetNoAlloc(t *testing.T) {
	for _, name := range []string{"", "8859/1", "windows-1252", "UNICODE UTF-8"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = DestinationCharset(name) }); n != 0 {
			t.Errorf("DestinationCharset(%q): %v allocations", name, n)
		}
	}
}
