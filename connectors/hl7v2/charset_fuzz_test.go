package hl7v2

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// fuzzCharsets are the fallbacks FuzzDecodeMessage picks from, one per
// kind of conversion.
var fuzzCharsets = []string{"", "ASCII", "8859/1", "8859/3", "8859/8", "WINDOWS-1252", "ISO IR14", "BIG-5", "GB 18030-2000",
	"SHIFT_JIS", "KS X 1001", "EUC-JP", "ISO IR87", "bogus"}

// FuzzDecodeMessage: DecodeMessage never panics or modifies its input;
// what it returns is valid UTF-8; its errors are *ParseError; a message
// in a single-byte set encodes back to the bytes it came from.
func FuzzDecodeMessage(f *testing.F) {
	for _, file := range corpusFiles(f) {
		data, err := os.ReadFile(filepath.Join(corpusDir, file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(0))
	}
	f.Add(charsetMsg("8859/1", "PID|1||X1||Ren\xe9e"), uint8(0))
	f.Add(charsetMsg("", "PID|1||X1||\xa4\x7c^\xff"), uint8(7))
	f.Add(charsetMsg("~ISO IR87", "PID|1||X1||\x1b$BK|\x1b(B^A"), uint8(0))
	f.Add(charsetMsg("GB 18030-2000", "NTE|1||a\x84\x31\xa4\x37b\x81"), uint8(0))
	f.Add(charsetMsg("ASCII~8859/7", "NTE|1||\xae"), uint8(0))
	f.Add(charsetMsg("", "OBX|1|TX|N||a\nb\xe9"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, pick uint8) {
		orig := bytes.Clone(data)
		fallback := fuzzCharsets[int(pick)%len(fuzzCharsets)]
		out, cs, err := DecodeMessage(data, "", fallback)
		if !bytes.Equal(data, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if !utf8.Valid(out) {
			t.Fatalf("%s output is not UTF-8: %q", cs, out)
		}
		c, err := LookupCharset(cs)
		if err != nil {
			t.Fatalf("DecodeMessage reported %q, which LookupCharset refuses: %v", cs, err)
		}
		if m, err := Parse(out); err == nil {
			_ = m.Header()
		}
		if c.def != nil && c.def.kind == kindSingle {
			back, err := c.Encode(out)
			if err != nil {
				t.Fatalf("%s: encoding what was decoded: %v", cs, err)
			}
			if !bytes.Equal(back, bytes.TrimPrefix(data, bom)) {
				t.Fatalf("%s round trip changed the bytes:\n in  %q\n out %q", cs, data, back)
			}
		}
		if c.MSH18() != "" && !c.IsUTF8() {
			// Encoding must not panic. It may fail: the multi-byte decoders
			// accept forms (Big5-HKSCS, GB 18030 four-byte ranges) whose
			// characters the encoder writes otherwise or not at all.
			_, _ = c.Encode(out)
		}
	})
}
