// This file names the character sets careflow reads and writes HL7 v2 in:
// the MSH-18 values of HL7 table 0211, the Windows code pages and the IANA
// names interfaces are configured with. charset_codec.go converts between
// them and UTF-8; docs/hl7v2.md lists what is supported and why.

package hl7v2

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"

	"github.com/careflow-health/careflow/internal/levenshtein"
)

// Charset is a character set careflow reads HL7 v2 in, and for most sets
// also writes. The zero Charset is UTF-8. Get one from LookupCharset (to
// read) or DestinationCharset (to write).
type Charset struct{ def *charsetDef }

// Name returns the canonical name: the HL7 table 0211 spelling where there
// is one ("8859/1", "UNICODE UTF-8", "BIG-5"), otherwise the upper-case
// IANA name ("WINDOWS-1252", "SHIFT_JIS"). It is what DecodeMessage
// reports and what avro.RawMessage.Charset holds.
func (c Charset) Name() string { return c.get().name }

// MSH18 returns the value careflow writes in MSH-18 for a message in c, or
// "" for a set careflow only reads (see DestinationCharset).
func (c Charset) MSH18() string {
	if d := c.get(); d.readOnly == "" {
		return d.name
	}
	return ""
}

// IANA returns the name HTTP and MIME know c by, for a Content-Type's
// charset parameter: "utf-8", "us-ascii", "iso-8859-1", "windows-1252",
// "big5", "gb18030", "euc-kr", "shift_jis".
func (c Charset) IANA() string {
	n := c.get().name
	switch {
	case c.get().kind == kindUTF8:
		return "utf-8"
	case n == "ASCII":
		return "us-ascii"
	case strings.HasPrefix(n, "8859/"):
		return "iso-8859-" + strings.TrimPrefix(n, "8859/")
	case strings.HasPrefix(n, "GB 18030"):
		return "gb18030"
	case n == "BIG-5":
		return "big5"
	case n == "KS X 1001":
		return "euc-kr"
	}
	return strings.ToLower(n)
}

// IsUTF8 reports whether c stores text as UTF-8 (UTF-8 itself, and ASCII,
// which careflow reads as UTF-8), so that conversion is validation only.
func (c Charset) IsUTF8() bool { k := c.get().kind; return k == kindUTF8 || k == kindASCII }

func (c Charset) get() *charsetDef {
	if c.def == nil {
		return utf8Def
	}
	return c.def
}

// LookupCharset returns the character set name stands for, for reading.
// Names are matched case-insensitively, ignoring spaces, dashes,
// underscores, slashes and dots, so "8859/1", "ISO-8859-1", "iso_8859_1"
// and "latin1" are one set. "" is UTF-8. An unknown or unsupported name is
// a *ParseError with CodeUnknownCharset and an empty Location whose Msg
// names it and, when a known name is close, suggests it.
func LookupCharset(name string) (Charset, error) {
	d, msg := lookupDef(name)
	if d == nil {
		return Charset{}, perr(CodeUnknownCharset, "", msg)
	}
	return Charset{d}, nil
}

// DestinationCharset is LookupCharset for writing: it also refuses the
// sets careflow reads but does not write ("UNICODE", ISO 2022-JP), saying
// what to use instead.
func DestinationCharset(name string) (Charset, error) {
	c, err := LookupCharset(name)
	if err != nil {
		return c, err
	}
	if name != "" && len(name) <= maxCharsetName {
		var buf [maxCharsetName]byte
		if why, ok := readOnlyAliases[string(charsetKey(buf[:0], name))]; ok {
			return Charset{}, perr(CodeUnknownCharset, "", fmt.Sprintf("character set %s cannot be written: %s", quoteName(name), why))
		}
	}
	if why := c.get().readOnly; why != "" {
		return Charset{}, perr(CodeUnknownCharset, "", fmt.Sprintf("character set %s cannot be written: %s", quoteName(name), why))
	}
	return c, nil
}

// CheckCharset validates an interface's configured charset (the one used
// when a message has no MSH-18): nil, or an error whose text names the
// value and suggests the closest known name. The config loader adds file,
// line and key.
func CheckCharset(name string) error {
	if _, err := LookupCharset(name); err != nil {
		return checkErr(err)
	}
	return nil
}

// CheckDestinationCharset validates a destination's configured charset as
// CheckCharset does, and also refuses the sets careflow cannot write.
func CheckDestinationCharset(name string) error {
	if _, err := DestinationCharset(name); err != nil {
		return checkErr(err)
	}
	return nil
}

// checkErr drops the error code: a configuration error reads better as
// plain text after the file and line.
func checkErr(err error) error {
	if pe, ok := err.(*ParseError); ok {
		return fmt.Errorf("%s", pe.Msg)
	}
	return err
}

type charsetKind uint8

const (
	kindUTF8   charsetKind = iota // validated, never converted
	kindASCII                     // read as UTF-8 (see docs/hl7v2.md), written as 7-bit
	kindSingle                    // one byte a character, through table
	kindMulti                     // a golang.org/x/text transformer
)

type charsetDef struct {
	name     string
	kind     charsetKind
	table    *[256]rune        // kindSingle: the character of each byte, utf8.RuneError where undefined
	enc      encoding.Encoding // kindMulti
	escapes  bool              // kindMulti: ASCII bytes can be ISO 2022 escapes, so 7-bit input is not plain ASCII
	readOnly string            // why careflow does not write this set; "" when it does

	revOnce sync.Once
	rev     map[rune]byte // kindSingle: byte of each character above 0x7f
}

// reverse returns the encoding table of a single-byte set, built on first
// use: most sets are only ever read.
func (d *charsetDef) reverse() map[rune]byte {
	d.revOnce.Do(func() {
		d.rev = make(map[rune]byte, 128)
		for b := 0x80; b < 0x100; b++ {
			if r := d.table[b]; r != utf8.RuneError {
				d.rev[r] = byte(b)
			}
		}
	})
	return d.rev
}

var (
	utf8Def  = &charsetDef{name: "UNICODE UTF-8", kind: kindUTF8}
	asciiDef = &charsetDef{name: "ASCII", kind: kindASCII}
	// iso2022JPDef reads JIS X 0208 (ISO IR87) and JIS X 0212 (ISO IR159)
	// designated by ISO 2022 escape sequences, as Japanese feeds declare
	// with MSH-18 "~ISO IR87" and MSH-20 "ISO 2022-1994".
	iso2022JPDef = &charsetDef{name: "ISO-2022-JP", kind: kindMulti, enc: japanese.ISO2022JP, escapes: true,
		readOnly: "careflow reads ISO 2022-JP (ISO IR87, ISO IR159) but does not write MSH-18 repetitions and MSH-20; use UNICODE UTF-8 or SHIFT_JIS"}
	jisX0201Def = &charsetDef{name: "ISO IR14", kind: kindSingle, table: jisX0201Table()}

	// charsetByKey maps every accepted spelling, as charsetKey writes it,
	// to its set.
	charsetByKey = map[string]*charsetDef{}
	// refusedCharsets are names careflow knows and refuses, with why.
	refusedCharsets = map[string]string{}
	// readOnlyAliases are spellings accepted on input only, with why a
	// destination may not use them.
	readOnlyAliases = map[string]string{}
)

func init() {
	add := func(d *charsetDef, aliases ...string) {
		for _, a := range append(aliases, d.name) {
			k := nameKey(a)
			if other, dup := charsetByKey[k]; dup && other != d {
				panic("hl7v2: charset name " + a + " given to two sets")
			}
			charsetByKey[k] = d
		}
	}
	add(utf8Def, "UTF-8", "UTF8", "ISO IR192", "CP65001")
	add(asciiDef, "US-ASCII", "ISO IR6", "ISO646-US", "ANSI_X3.4-1968", "CP367", "IBM367")
	// UNICODE alone is UCS-2 in HL7 2.3/2.4, with no byte-order rule. A
	// message whose MSH careflow can find byte by byte is not UCS-2, and
	// UTF-8 is the only ASCII-compatible Unicode form, so careflow reads it
	// as UTF-8 (validated) and never writes it.
	charsetByKey[nameKey("UNICODE")] = utf8Def
	readOnlyAliases[nameKey("UNICODE")] = "HL7 2.3/2.4 UNICODE means UCS-2 with no byte-order rule; careflow reads it as UTF-8 and writes UNICODE UTF-8"

	for _, s := range []struct {
		n      int
		cm     *charmap.Charmap
		others []string
	}{
		{1, charmap.ISO8859_1, []string{"LATIN1", "L1", "ISO IR100", "CP28591"}},
		{2, charmap.ISO8859_2, []string{"LATIN2", "L2", "ISO IR101", "CP28592"}},
		{3, charmap.ISO8859_3, []string{"LATIN3", "L3", "ISO IR109", "CP28593"}},
		{4, charmap.ISO8859_4, []string{"LATIN4", "L4", "ISO IR110", "CP28594"}},
		{5, charmap.ISO8859_5, []string{"CYRILLIC", "ISO IR144", "CP28595"}},
		{6, charmap.ISO8859_6, []string{"ARABIC", "ISO IR127", "CP28596"}},
		{7, charmap.ISO8859_7, []string{"GREEK", "ISO IR126", "CP28597"}},
		{8, charmap.ISO8859_8, []string{"HEBREW", "ISO IR138", "CP28598"}},
		{9, charmap.ISO8859_9, []string{"LATIN5", "L5", "ISO IR148", "CP28599"}},
		{10, charmap.ISO8859_10, []string{"LATIN6", "L6"}},
		{13, charmap.ISO8859_13, []string{"LATIN7", "L7"}},
		{14, charmap.ISO8859_14, []string{"LATIN8", "L8"}},
		{15, charmap.ISO8859_15, []string{"LATIN9", "L9", "LATIN0", "ISO IR203", "CP28605"}},
		{16, charmap.ISO8859_16, []string{"LATIN10", "L10"}},
	} {
		n := fmt.Sprint(s.n)
		// ISO 8859 leaves 0x80-0x9F to C1 control codes, which no clinical
		// text holds: those bytes in an "8859/1" message are almost always
		// Windows-1252 (€, curly quotes, dashes) mislabelled, and reading
		// them as controls would lose the character without a trace.
		add(&charsetDef{name: "8859/" + n, kind: kindSingle, table: charmapTable(s.cm, true)},
			append(s.others, "ISO-8859-"+n)...)
	}
	cp := func(n int, cm *charmap.Charmap) {
		name := fmt.Sprint(n)
		add(&charsetDef{name: "WINDOWS-" + name, kind: kindSingle, table: charmapTable(cm, false)},
			"CP"+name, "WIN"+name, "X-CP"+name, "MS-"+name)
	}
	cp(874, charmap.Windows874)
	cp(1250, charmap.Windows1250)
	cp(1251, charmap.Windows1251)
	cp(1252, charmap.Windows1252)
	cp(1253, charmap.Windows1253)
	cp(1254, charmap.Windows1254)
	cp(1255, charmap.Windows1255)
	cp(1256, charmap.Windows1256)
	cp(1257, charmap.Windows1257)
	cp(1258, charmap.Windows1258)
	add(jisX0201Def, "JIS X 0201", "JIS_X0201")

	// The x/text decoders of these sets are the WHATWG ones, which read
	// the common supersets: Big5-HKSCS, GBK's Windows-936, EUC-KR's
	// Windows-949.
	add(&charsetDef{name: "GB 18030-2000", kind: kindMulti, enc: simplifiedchinese.GB18030}, "GB18030", "GB 18030-2005", "GB 18030-2022")
	add(&charsetDef{name: "GBK", kind: kindMulti, enc: simplifiedchinese.GBK}, "GB2312", "GB 2312-80", "EUC-CN", "CP936", "WINDOWS-936")
	add(&charsetDef{name: "BIG-5", kind: kindMulti, enc: traditionalchinese.Big5}, "BIG5-HKSCS", "CP950", "WINDOWS-950")
	add(&charsetDef{name: "KS X 1001", kind: kindMulti, enc: korean.EUCKR}, "EUC-KR", "KS C 5601", "KS_C_5601-1987", "KSC5601", "CP949", "WINDOWS-949")
	add(&charsetDef{name: "SHIFT_JIS", kind: kindMulti, enc: japanese.ShiftJIS}, "SJIS", "MS_KANJI", "CP932", "WINDOWS-31J")
	add(&charsetDef{name: "EUC-JP", kind: kindMulti, enc: japanese.EUCJP}, "CP51932")
	add(iso2022JPDef, "ISO IR87", "ISO IR159", "CSISO2022JP")

	const wide = "UTF-16 and UTF-32 put NUL bytes, and MLLP's 0x0b/0x1c framing bytes, inside characters, so HL7 v2 cannot be framed or parsed byte by byte in them; use UNICODE UTF-8"
	for _, n := range []string{"UNICODE UTF-16", "UTF-16", "UTF-16LE", "UTF-16BE", "UCS-2", "UNICODE UTF-32", "UTF-32", "UTF-32LE", "UTF-32BE", "UCS-4"} {
		refusedCharsets[nameKey(n)] = wide
	}
	refusedCharsets[nameKey("CNS 11643-1992")] = "golang.org/x/text has no CNS 11643 decoder"
	refusedCharsets[nameKey("8859/11")] = "golang.org/x/text has no ISO 8859-11 table; WINDOWS-874 is its superset"
	refusedCharsets[nameKey("ISO-8859-11")] = refusedCharsets[nameKey("8859/11")]
}

// charmapTable returns the character of every byte of cm, RuneError where
// cm leaves the byte undefined; c1 also marks 0x80-0x9F undefined.
func charmapTable(cm *charmap.Charmap, c1 bool) *[256]rune {
	var t [256]rune
	for b := range 256 {
		t[b] = cm.DecodeByte(byte(b))
		if c1 && b >= 0x80 && b < 0xa0 {
			t[b] = utf8.RuneError
		}
	}
	return &t
}

// jisX0201Table is JIS X 0201 as HL7's ISO IR14 uses it: ASCII below 0x80
// (0x5C stays the backslash HL7 escapes with, not a yen sign) and
// half-width katakana at 0xA1-0xDF.
func jisX0201Table() *[256]rune {
	var t [256]rune
	for b := range 256 {
		switch {
		case b < 0x80:
			t[b] = rune(b)
		case b >= 0xa1 && b <= 0xdf:
			t[b] = 0xff61 + rune(b-0xa1)
		default:
			t[b] = utf8.RuneError
		}
	}
	return &t
}

// maxCharsetName bounds the names looked up: longer is not a name.
const maxCharsetName = 40

// charsetKey appends name to dst upper-cased, without spaces, dashes,
// underscores, slashes and dots.
func charsetKey[S []byte | string](dst []byte, name S) []byte {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == ' ' || c == '-' || c == '_' || c == '/' || c == '.' || c == '\t':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// nameKey is charsetKey as a map key.
func nameKey(name string) string { return string(charsetKey(nil, name)) }

// lookupBytes finds a name without allocating; nil when unknown.
func lookupBytes(name []byte) *charsetDef {
	if len(name) > maxCharsetName {
		return nil
	}
	var buf [maxCharsetName]byte
	return charsetByKey[string(charsetKey(buf[:0], name))]
}

// lookupDef finds name, or explains why not.
func lookupDef(name string) (*charsetDef, string) {
	if strings.TrimSpace(name) == "" {
		return utf8Def, ""
	}
	if len(name) <= maxCharsetName {
		var buf [maxCharsetName]byte
		if d := charsetByKey[string(charsetKey(buf[:0], name))]; d != nil {
			return d, "" // found without allocating: renderers look up per message
		}
		k := nameKey(name)
		if why, ok := refusedCharsets[k]; ok {
			return nil, fmt.Sprintf("character set %s is not supported: %s", quoteName(name), why)
		}
		if s := suggestCharset(k); s != "" {
			return nil, fmt.Sprintf("unknown character set %s; did you mean %q?", quoteName(name), s)
		}
	}
	return nil, fmt.Sprintf("unknown character set %s (careflow reads ASCII, UNICODE UTF-8, 8859/1 to 8859/16, WINDOWS-874, WINDOWS-1250 to 1258, "+
		"GB 18030-2000, GBK, BIG-5, KS X 1001, SHIFT_JIS, EUC-JP, ISO-2022-JP and ISO IR14; see docs/hl7v2.md)", quoteName(name))
}

// quoteName quotes a name for a message, cut short: it may come from a
// sender's MSH-18 and be anything.
func quoteName(name string) string {
	if len(name) > maxCharsetName {
		name = name[:maxCharsetName] + "..."
	}
	return fmt.Sprintf("%q", name)
}

// suggestCharset returns the canonical name of the known spelling closest
// to key, or "" when none is close enough to be a typo.
func suggestCharset(key string) string {
	best, bestDist := "", 3
	for k, d := range charsetByKey {
		if dist := levenshtein.Distance(key, k); dist < bestDist || dist == bestDist && best != "" && d.name < best {
			if dist*2 < len(k) {
				best, bestDist = d.name, dist
			}
		}
	}
	return best
}
