package hl7v2

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// charsetMsg builds a message declaring msh18, with body segments after
// the MSH, CR-terminated. The MSH is ADT^A01 v2.5.
func charsetMsg(msh18 string, body ...string) []byte {
	msh := "MSH|^~\\&|APP|FAC|CF|CF|20240101120000||ADT^A01|C1|P|2.5|||||"
	if msh18 != "" {
		msh += "|" + msh18
	}
	return []byte(strings.Join(append([]string{msh}, body...), "\r") + "\r")
}

func TestLookupCharset(t *testing.T) {
	tests := map[string]string{
		"":               "UNICODE UTF-8",
		"UNICODE UTF-8":  "UNICODE UTF-8",
		"unicode utf-8":  "UNICODE UTF-8",
		"UTF-8":          "UNICODE UTF-8",
		"utf8":           "UNICODE UTF-8",
		"UNICODE":        "UNICODE UTF-8",
		"ASCII":          "ASCII",
		"US-ASCII":       "ASCII",
		"iso ir6":        "ASCII",
		"8859/1":         "8859/1",
		"ISO-8859-1":     "8859/1",
		"iso_8859_1":     "8859/1",
		"ISO 8859-1":     "8859/1",
		"latin1":         "8859/1",
		"ISO_IR 100":     "8859/1",
		"8859/2":         "8859/2",
		"8859/9":         "8859/9",
		"8859/15":        "8859/15",
		"latin-9":        "8859/15",
		"WINDOWS-1252":   "WINDOWS-1252",
		"cp1252":         "WINDOWS-1252",
		"Windows 1250":   "WINDOWS-1250",
		"windows-874":    "WINDOWS-874",
		"BIG-5":          "BIG-5",
		"big5":           "BIG-5",
		"GB 18030-2000":  "GB 18030-2000",
		"gb18030":        "GB 18030-2000",
		"GB2312":         "GBK",
		"KS X 1001":      "KS X 1001",
		"EUC-KR":         "KS X 1001",
		"Shift_JIS":      "SHIFT_JIS",
		"ISO IR87":       "ISO-2022-JP",
		"ISO IR159":      "ISO-2022-JP",
		"ISO IR14":       "ISO IR14",
		" 8859/1 ":       "8859/1",
		"iso-8859-16":    "8859/16",
		"WINDOWS-1258":   "WINDOWS-1258",
		"x-cp1251":       "WINDOWS-1251",
		"unicode  utf_8": "UNICODE UTF-8",
	}
	for name, want := range tests {
		c, err := LookupCharset(name)
		if err != nil {
			t.Errorf("LookupCharset(%q): %v", name, err)
			continue
		}
		if c.Name() != want {
			t.Errorf("LookupCharset(%q) = %s, want %s", name, c.Name(), want)
		}
	}
	if (Charset{}).Name() != "UNICODE UTF-8" || !(Charset{}).IsUTF8() {
		t.Error("the zero Charset is not UTF-8")
	}
}

func TestLookupCharsetErrors(t *testing.T) {
	tests := []struct{ name, wantMsg string }{
		{"8859-l", `did you mean "8859/1"?`},
		{"windws-1252", `did you mean "WINDOWS-1252"?`},
		{"UTF-7", `did you mean "UNICODE UTF-8"?`},
		{"UNICODE UTF-16", "UTF-16 and UTF-32"},
		{"UTF-16LE", "UTF-16 and UTF-32"},
		{"UNICODE UTF-32", "UTF-16 and UTF-32"},
		{"CNS 11643-1992", "no CNS 11643 decoder"},
		{"8859/11", "WINDOWS-874"},
		{"KLINGON", "careflow reads ASCII"},
		{strings.Repeat("X", 200), "careflow reads ASCII"},
	}
	for _, tc := range tests {
		_, err := LookupCharset(tc.name)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Code != CodeUnknownCharset || pe.Location != "" {
			t.Errorf("LookupCharset(%.20q) = %v, want %s", tc.name, err, CodeUnknownCharset)
			continue
		}
		if !strings.Contains(pe.Msg, tc.wantMsg) {
			t.Errorf("LookupCharset(%.20q) message %q lacks %q", tc.name, pe.Msg, tc.wantMsg)
		}
		if len(pe.Msg) > 400 {
			t.Errorf("message of %d bytes quotes too much", len(pe.Msg))
		}
		cerr := CheckCharset(tc.name)
		if cerr == nil || strings.HasPrefix(cerr.Error(), "hl7.") || !strings.Contains(cerr.Error(), tc.wantMsg) {
			t.Errorf("CheckCharset(%.20q) = %v, want the message without code", tc.name, cerr)
		}
	}
	if err := CheckCharset("latin1"); err != nil {
		t.Errorf("CheckCharset(latin1) = %v", err)
	}
}

func TestDestinationCharset(t *testing.T) {
	for name, msh18 := range map[string]string{
		"": "UNICODE UTF-8", "utf-8": "UNICODE UTF-8", "UNICODE UTF-8": "UNICODE UTF-8",
		"latin1": "8859/1", "ISO-8859-15": "8859/15", "ascii": "ASCII", "cp1252": "WINDOWS-1252",
		"big5": "BIG-5", "GB18030": "GB 18030-2000", "euc-kr": "KS X 1001", "ISO IR14": "ISO IR14",
	} {
		c, err := DestinationCharset(name)
		if err != nil {
			t.Errorf("DestinationCharset(%q): %v", name, err)
			continue
		}
		if c.MSH18() != msh18 {
			t.Errorf("DestinationCharset(%q).MSH18() = %q, want %q", name, c.MSH18(), msh18)
		}
		if err := CheckDestinationCharset(name); err != nil {
			t.Errorf("CheckDestinationCharset(%q) = %v", name, err)
		}
	}
	for name, want := range map[string]string{"UNICODE": "writes UNICODE UTF-8", "ISO IR87": "does not write", "iso-2022-jp": "does not write", "UTF-16": "UTF-16"} {
		if _, err := DestinationCharset(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DestinationCharset(%q) = %v, want an error saying %q", name, err, want)
		}
		if err := CheckDestinationCharset(name); err == nil {
			t.Errorf("CheckDestinationCharset(%q) accepted it", name)
		}
	}
	if c, _ := LookupCharset("ISO IR87"); c.MSH18() != "" {
		t.Errorf("ISO-2022-JP MSH18 = %q, want none: careflow does not write it", c.MSH18())
	}
}

// TestDecodeMessage decodes real bytes and checks the value after Parse.
func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name               string
		data               []byte
		declared, fallback string
		charset            string
		path, want         string
	}{
		{"é as 0xE9 in 8859/1", charsetMsg("8859/1", "PID|1||X1||Ren\xe9e^Ana"), "", "", "8859/1", "PID-5.1", "Renée"},
		{"Ł as 0xA3 in 8859/2", charsetMsg("8859/2", "PID|1||X1||\xa3ukasz^Jan"), "", "", "8859/2", "PID-5.1", "Łukasz"},
		{"€ as 0x80 in Windows-1252", charsetMsg("WINDOWS-1252", "OBX|1|ST|FEE||12 \x80"), "", "", "WINDOWS-1252", "OBX-5", "12 €"},
		{"€ as 0xA4 in 8859/15", charsetMsg("8859/15", "OBX|1|ST|FEE||12 \xa4"), "", "", "8859/15", "OBX-5", "12 €"},
		{"Greek in 8859/7", charsetMsg("8859/7", "PID|1||X1||\xc1\xe8\xde\xed\xe1"), "", "", "8859/7", "PID-5", "Αθήνα"},
		{"Cyrillic in Windows-1251", charsetMsg("cp1251", "PID|1||X1||\xc8\xe2\xe0\xed\xee\xe2"), "", "", "WINDOWS-1251", "PID-5", "Иванов"},
		{"Big5 trail byte 0x7C is not a field separator", charsetMsg("BIG-5", "PID|1||X1||\xa4\x7c^Given"), "", "", "BIG-5", "PID-5.2", "Given"},
		{"Big5 value with trail 0x7C", charsetMsg("BIG-5", "PID|1||X1||\xa4\x7c^Given"), "", "", "BIG-5", "PID-5.1", "弋"},
		{"GB 18030 trail byte 0x7C", charsetMsg("GB 18030-2000", "PID|1||X1||\x81\x7c^Li"), "", "", "GB 18030-2000", "PID-5.1", "亅"},
		{"GB 18030 four-byte replacement character is text", charsetMsg("GB 18030-2000", "NTE|1||a\x84\x31\xa4\x37b"), "", "", "GB 18030-2000", "NTE-3", "a\ufffdb"},
		{"Shift_JIS trail byte 0x5C is not an escape", charsetMsg("SHIFT_JIS", "PID|1||X1||\x83\x5c\x95\x5c^A"), "", "", "SHIFT_JIS", "PID-5.1", "ソ表"},
		{"EUC-KR", charsetMsg("KS X 1001", "PID|1||X1||\xb0\xa1^A"), "", "", "KS X 1001", "PID-5.1", "가"},
		{"ISO 2022-JP kanji holding 0x7C", charsetMsg("~ISO IR87", "PID|1||X1||\x1b$BK|\x1b(B^A"), "", "", "ISO-2022-JP", "PID-5.1", "万"},
		{"ISO IR14 katakana", charsetMsg("ISO IR14", "PID|1||X1||\xb1\xb2"), "", "", "ISO IR14", "PID-5", "ｱｲ"},
		{"UTF-8", charsetMsg("UNICODE UTF-8", "PID|1||X1||Ren\xc3\xa9e"), "", "", "UNICODE UTF-8", "PID-5", "Renée"},
		{"UNICODE alone is read as UTF-8", charsetMsg("UNICODE", "PID|1||X1||Ren\xc3\xa9e"), "", "", "UNICODE UTF-8", "PID-5", "Renée"},
		{"ASCII declared, UTF-8 sent", charsetMsg("ASCII", "PID|1||X1||Ren\xc3\xa9e"), "", "", "ASCII", "PID-5", "Renée"},
		{"no MSH-18: the fallback", charsetMsg("", "PID|1||X1||Ren\xe9e"), "", "8859/1", "8859/1", "PID-5", "Renée"},
		{"no MSH-18, no fallback: UTF-8", charsetMsg("", "PID|1||X1||Ren\xc3\xa9e"), "", "", "UNICODE UTF-8", "PID-5", "Renée"},
		{"MSH-18 beats the fallback", charsetMsg("8859/1", "PID|1||X1||Ren\xe9e"), "", "UTF-8", "8859/1", "PID-5", "Renée"},
		{"declared beats MSH-18", charsetMsg("UNICODE UTF-8", "PID|1||X1||Ren\xe9e"), "latin1", "", "8859/1", "PID-5", "Renée"},
		{"ASCII~8859/1 reads as 8859/1", charsetMsg("ASCII~8859/1", "PID|1||X1||Ren\xe9e"), "", "", "8859/1", "PID-5", "Renée"},
		{"UTF-8 BOM before a Latin-1 message", append(append([]byte{}, bom...), charsetMsg("8859/1", "PID|1||X1||Ren\xe9e")...), "", "", "8859/1", "PID-5", "Renée"},
		{"MLLP framing survives", append(append([]byte{0x0b}, charsetMsg("8859/1", "PID|1||X1||Ren\xe9e")...), 0x1c, '\r'), "", "", "8859/1", "PID-5", "Renée"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, cs, err := DecodeMessage(tc.data, tc.declared, tc.fallback)
			if err != nil {
				t.Fatal(err)
			}
			if cs != tc.charset {
				t.Errorf("charset = %q, want %q", cs, tc.charset)
			}
			if !utf8.Valid(out) {
				t.Fatalf("output is not UTF-8: %q", out)
			}
			m, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Get(tc.path); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

// TestDecodeBeforeParse shows why the whole message is converted first:
// parsed raw, the Big5 character's trail byte splits PID-5.
func TestDecodeBeforeParse(t *testing.T) {
	data := charsetMsg("BIG-5", "PID|1||X1||\xa4\x7c^Given|19700101")
	raw, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Get("PID-6") == "19700101" {
		t.Fatal("raw parse found PID-6; the fixture no longer has a 0x7C trail byte")
	}
	out, _, err := DecodeMessage(data, "", "")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Parse(out)
	if m.Get("PID-6") != "19700101" {
		t.Errorf("PID-6 = %q after decoding", m.Get("PID-6"))
	}
}

func TestDecodeMessageCorpus(t *testing.T) {
	for file, want := range map[string][2]string{
		"adt_a28_v26.hl7":                 {"8859/1", "MüLLER"},
		"oru_r01_v27_utf8.hl7":            {"UNICODE UTF-8", "ÅNGSTRÖM"},
		"adt_a01_v231_repeated_msh18.hl7": {"8859/1", "CHARSET"},
		"adt_a01_v251.hl7":                {"UNICODE UTF-8", ""},
	} {
		data, err := os.ReadFile(filepath.Join(corpusDir, file))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, cs, err := DecodeMessage(data, "", "")
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		m, err := Parse(out)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if cs != want[0] || m.Get("PID-5.1") != want[1] {
			t.Errorf("%s: charset %q PID-5.1 %q, want %q %q", file, cs, m.Get("PID-5.1"), want[0], want[1])
		}
	}
}

// TestDecodeNoCopy: UTF-8, ASCII and 7-bit input come back as the same
// slice, without allocating.
func TestDecodeNoCopy(t *testing.T) {
	for _, tc := range []struct {
		msh18 string
		body  string
	}{
		{"UNICODE UTF-8", "PID|1||X1||Ren\xc3\xa9e"},
		{"ASCII", "PID|1||X1||Rene"},
		{"", "PID|1||X1||Ren\xc3\xa9e"},
		{"8859/1", "PID|1||X1||Rene"},
		{"BIG-5", "PID|1||X1||Rene"},
	} {
		data := charsetMsg(tc.msh18, tc.body)
		out, _, err := DecodeMessage(data, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if &out[0] != &data[0] || len(out) != len(data) {
			t.Errorf("%s: output is a copy", tc.msh18)
		}
		if n := testing.AllocsPerRun(100, func() { _, _, _ = DecodeMessage(data, "", "") }); n != 0 {
			t.Errorf("%s: %v allocations, want 0", tc.msh18, n)
		}
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	tests := []struct {
		name               string
		data               []byte
		declared, fallback string
		code, location     string
		msg                string
	}{
		{"0xE9 declared UTF-8", charsetMsg("UNICODE UTF-8", "PID|1||X1||Ren\xe9e"), "", "", CodeBadCharset, "PID-5", "not valid UTF-8"},
		{"0xE9 with no MSH-18", charsetMsg("", "EVN|A01", "PID|1||X1||Ren\xe9e"), "", "", CodeBadCharset, "PID-5", "offset"},
		{"0xE9 declared ASCII", charsetMsg("ASCII", "PID|1||X1||Ren\xe9e"), "", "", CodeBadCharset, "PID-5", "neither ASCII nor UTF-8"},
		{"0x81 in Windows-1252", charsetMsg("WINDOWS-1252", "PID|1||X1||A\x81"), "", "", CodeBadCharset, "PID-5", "WINDOWS-1252"},
		{"hole 0xA5 of 8859-3 in the second OBX", charsetMsg("8859/3", "OBX|1|ST|A||ok", "OBX|2|ST|B||x\xa5"), "", "", CodeBadCharset, "OBX[2]-5", "8859/3"},
		{"hole 0xAE of 8859-7", charsetMsg("8859/7", "PID|1||X1\xae"), "", "", CodeBadCharset, "PID-3", "8859/7"},
		{"hole 0xFF of 8859-8", charsetMsg("8859/8", "PID|1||X1||\xff"), "", "", CodeBadCharset, "PID-5", "8859/8"},
		{"hole 0xA1 of 8859-6", charsetMsg("8859/6", "NTE|1||\xa1"), "", "", CodeBadCharset, "NTE-3", "8859/6"},
		{"C1 byte 0x80 in 8859/1 (Windows-1252 mislabelled)", charsetMsg("8859/1", "PID|1||X1||\x80"), "", "", CodeBadCharset, "PID-5", "8859/1"},
		{"invalid Big5", charsetMsg("BIG-5", "PID|1||X1||\xa4\x7c^\xff"), "", "", CodeBadCharset, "PID-5", "BIG-5"},
		{"invalid Shift_JIS", charsetMsg("SHIFT_JIS", "PID|1||X1||\x83\x5c|\xa0\xa0"), "", "", CodeBadCharset, "PID-6", "SHIFT_JIS"},
		{"invalid EUC-KR at the end", charsetMsg("EUC-KR", "PID|1||X1||\xb0"), "", "", CodeBadCharset, "PID-5", "KS X 1001"},
		{"bad byte in the MSH", []byte("MSH|^~\\&|APP|F\xe9C|CF|CF|20240101||ADT^A01|C1|P|2.5\rPID|1\r"), "", "", CodeBadCharset, "MSH-4", "UTF-8"},
		{"bad byte in MSH-2 of UTF-8", []byte("MSH|^~\xe9|APP|F|CF|CF|20240101||ADT^A01|C1|P|2.5\r"), "", "", CodeBadCharset, "MSH-2", "UTF-8"},
		{"bad byte in a segment ID", charsetMsg("", "EVN|A01", "P\xe9D|1"), "", "", CodeBadCharset, "segment 3", "UTF-8"},
		{"bad byte in unescaped continuation text", charsetMsg("", "OBX|1|TX|N||line one\nline \xe9"), "", "", CodeBadCharset, "OBX-5", "UTF-8"},
		{"bad byte before the MSH", append([]byte{0xe9, '\r'}, charsetMsg("")...), "", "", CodeBadCharset, "", "offset 0"},
		{"unknown MSH-18", charsetMsg("KLINGON"), "", "", CodeUnknownCharset, "MSH-18", `"KLINGON"`},
		{"MSH-18 typo", charsetMsg("8859-l"), "", "", CodeUnknownCharset, "MSH-18", `did you mean "8859/1"`},
		{"MSH-18 UTF-16", charsetMsg("UNICODE UTF-16"), "", "", CodeUnknownCharset, "MSH-18", "MLLP"},
		{"two non-ASCII sets", charsetMsg("8859/1~8859/7"), "", "", CodeUnknownCharset, "MSH-18", "8859/1 and 8859/7"},
		{"unknown repetition", charsetMsg("ASCII~FOO"), "", "", CodeUnknownCharset, "MSH-18", "repetition 2"},
		{"unknown fallback", charsetMsg(""), "", "latin-x", CodeUnknownCharset, "", "configured charset"},
		{"unknown declared", charsetMsg(""), "nope", "", CodeUnknownCharset, "", "declared charset"},
		{"non-ASCII field separator in 8859/1", []byte("MSH\xa6^~\\&\xa6A\xa6B\xa6C\xa6D\xa6\xa6\xa6ADT^A01\xa6C1\xa6P\xa62.5\xa6\xa6\xa6\xa6\xa6\xa68859/1\r"), "", "", CodeBadEncoding, "MSH-1", "not ASCII"},
		{"MSH-18 moved by a Big5 trail byte in MSH-4", []byte("MSH|^~\\&|APP|\xa4\x7c|CF|CF|20240101||ADT^A01|C1|P|2.5|||||BIG-5|UNICODE UTF-8\rPID|1||\xa4\x7c\r"), "", "", CodeBadCharset, "MSH-18", "MSH-3 to MSH-17 must be ASCII"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := DecodeMessage(tc.data, tc.declared, tc.fallback)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v (output %q), want a *ParseError", err, out)
			}
			if pe.Code != tc.code || pe.Location != tc.location {
				t.Errorf("got %s at %q, want %s at %q (%s)", pe.Code, pe.Location, tc.code, tc.location, pe.Msg)
			}
			if !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("message %q lacks %q", pe.Msg, tc.msg)
			}
			for _, secret := range []string{"Ren", "line", "X1"} {
				if strings.Contains(pe.Msg, secret) {
					t.Errorf("message %q quotes message text", pe.Msg)
				}
			}
		})
	}
}

// TestSingleByteTables checks every single-byte set: 7-bit bytes are
// ASCII, every defined byte survives a round trip, and none maps to the
// same character as another.
func TestSingleByteTables(t *testing.T) {
	seen := map[*charsetDef]bool{}
	for _, d := range charsetByKey {
		if d.kind != kindSingle || seen[d] {
			continue
		}
		seen[d] = true
		c := Charset{d}
		var all []byte
		for b := range 256 {
			r := d.table[b]
			if b < 0x80 && r != rune(b) {
				t.Errorf("%s: byte %#x is %U, not ASCII", d.name, b, r)
			}
			if r != utf8.RuneError {
				all = append(all, byte(b))
			}
		}
		text, err := c.Decode(all)
		if err != nil {
			t.Errorf("%s: %v", d.name, err)
			continue
		}
		back, err := c.Encode(text)
		if err != nil || !bytes.Equal(back, all) {
			t.Errorf("%s: round trip of every defined byte: %v", d.name, err)
		}
	}
	if len(seen) < 25 {
		t.Errorf("only %d single-byte sets registered", len(seen))
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	ascii := benchData(b, "bench/adt_a01_2k.hl7")
	latin := bytes.Replace(bytes.Clone(ascii), []byte("UNICODE UTF-8"), []byte("8859/1"), 1)
	latin = bytes.ReplaceAll(latin, []byte("e"), []byte{0xe9})
	big5 := bytes.Replace(bytes.Clone(ascii), []byte("UNICODE UTF-8"), []byte("BIG-5"), 1)
	big5 = bytes.ReplaceAll(big5, []byte("e"), []byte{0xa4, 0x7c})
	for _, bc := range []struct {
		name string
		data []byte
	}{{"UTF8_2KB", ascii}, {"Latin1_2KB", latin}, {"Big5_2KB", big5}} {
		if _, _, err := DecodeMessage(bc.data, "", ""); err != nil {
			b.Fatalf("%s: %v", bc.name, err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				if _, _, err := DecodeMessage(bc.data, "", ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A \X..\ escape spells bytes in the message's own set: after conversion
// to UTF-8 it spells the same character's UTF-8 bytes, so unescaping gives
// the character, not an invalid byte.
func TestDecodeRecodesHexEscapes(t *testing.T) {
	cases := []struct {
		name, msg, charset, want string
		code                     string
	}{
		{"Latin-1 é, all-ASCII message", "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|C1|P|2.5||||||8859/1\rPID|1||1||Ren\\XE9\\e^Anne", "", "Renée", ""},
		{"Latin-1 é beside a literal é", "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|C1|P|2.5||||||8859/1\rPID|1||1||Ren\\XE9\\e^L\xe9a", "", "Renée", ""},
		{"two bytes", "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|C1|P|2.5||||||8859/1\rPID|1||1||\\XE9E8\\", "", "éè", ""},
		{"UTF-8 untouched", "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|C1|P|2.5||||||UNICODE UTF-8\rPID|1||1||Ren\\XC3A9\\e", "", "Renée", ""},
		{"not hex", "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|C1|P|2.5||||||8859/1\rPID|1||1||\\XZZ\\", "", "", CodeBadCharset},
		{"a byte Windows-1252 leaves undefined", "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|C1|P|2.5||||||WINDOWS-1252\rPID|1||1||\\X81\\", "", "", CodeBadCharset},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := DecodeMessage([]byte(c.msg), c.charset, "")
			if c.code != "" {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Code != c.code || pe.Location != "PID-5" {
					t.Fatalf("err %v, want %s at PID-5", err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Get("PID-5.1"); got != c.want {
				t.Errorf("PID-5.1 = %q, want %q", got, c.want)
			}
			if err := m.ValidUTF8(); err != nil {
				t.Errorf("ValidUTF8: %v", err)
			}
		})
	}
}

func TestCharsetIANA(t *testing.T) {
	for name, want := range map[string]string{
		"": "utf-8", "UNICODE UTF-8": "utf-8", "ASCII": "us-ascii", "8859/1": "iso-8859-1", "8859/15": "iso-8859-15",
		"WINDOWS-1252": "windows-1252", "BIG-5": "big5", "GB 18030-2000": "gb18030", "KS X 1001": "euc-kr",
	} {
		cs, err := LookupCharset(name)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if got := cs.IANA(); got != want {
			t.Errorf("%q: IANA %q, want %q", name, got, want)
		}
	}
}
