// This file converts whole messages between their character set and
// UTF-8: DecodeMessage on the way in (MSH-18, else the interface's
// charset), Charset.Encode on the way out, and the HL7 location of the
// first byte or character that does not convert.

package hl7v2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"

	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Error codes of the character-set layer, stable like those in errors.go.
const (
	CodeUnknownCharset  = "hl7.unknown_charset" // MSH-18 or a configured charset names a set careflow does not know or support
	CodeBadCharset      = "hl7.bad_charset"     // bytes that are not valid in the message's character set
	CodeUnrepresentable = "hl7.unrepresentable" // a character the destination's character set has no code for
)

// DecodeMessage returns data converted to UTF-8 and the canonical name of
// the character set it was read as (see Charset.Name). The set is
// declared, when not empty (a replay that already knows it, such as
// avro.RawMessage.Charset); otherwise MSH-18; otherwise fallback, the
// interface's configured charset; otherwise UTF-8.
//
// The whole message is converted before anyone parses it: in Big5, GBK,
// Shift_JIS and GB 18030 a trail byte can equal | ^ ~ \ or &, so parsing
// the raw bytes would split characters. For UTF-8 and ASCII data is only
// validated and returned as is, without allocating; the same holds for a
// message whose bytes are all 7-bit in any ASCII-compatible set. ASCII is
// validated as UTF-8 because senders that declare ASCII and send UTF-8
// are common and UTF-8 is the only reading of their bytes that loses
// nothing.
//
// Errors are *ParseError: CodeUnknownCharset at "MSH-18" for an MSH-18
// careflow cannot read (at "" for a bad declared or fallback name),
// CodeBadCharset at the segment and field of the first byte the set does
// not define ("PID-5", "OBX[2]-5"), and CodeBadEncoding when a non-UTF-8
// message uses a non-ASCII delimiter. Messages name the set and the byte
// offset, never the text. A charset name is returned whenever one was
// resolved, also with CodeBadCharset.
func DecodeMessage(data []byte, declared, fallback string) (utf8Data []byte, charset string, err error) {
	cs, fromMSH, err := resolveCharset(data, declared, fallback)
	if err != nil {
		return nil, "", err
	}
	out, err := cs.Decode(data)
	if err != nil {
		return nil, cs.Name(), err
	}
	if fromMSH && cs.def != nil && cs.def.kind == kindMulti {
		// MSH-18 was read from the raw bytes. If the MSH holds multi-byte
		// text whose trail byte is a delimiter, it was read from the wrong
		// field: the decoded MSH must say the same.
		again, _, err := msh18Charset(out)
		if err != nil || again.def != cs.def {
			return nil, cs.Name(), perr(CodeBadCharset, "MSH-18", fmt.Sprintf("MSH-18 reads differently once the message is decoded from %s: "+
				"the MSH holds non-ASCII text whose bytes look like delimiters; MSH-3 to MSH-17 must be ASCII", cs.Name()))
		}
	}
	return out, cs.Name(), nil
}

// resolveCharset picks the set DecodeMessage reads data in.
func resolveCharset(data []byte, declared, fallback string) (cs Charset, fromMSH bool, err error) {
	if declared != "" {
		d, msg := lookupDef(declared)
		if d == nil {
			return Charset{}, false, perr(CodeUnknownCharset, "", "declared charset: "+msg)
		}
		return Charset{d}, false, nil
	}
	cs, found, err := msh18Charset(data)
	if err != nil || found {
		return cs, found, err
	}
	d, msg := lookupDef(fallback)
	if d == nil {
		return Charset{}, false, perr(CodeUnknownCharset, "", "configured charset: "+msg)
	}
	return Charset{d}, false, nil
}

// msh18Charset reads MSH-18 without allocating. found is false when MSH-18
// is empty or there is no MSH. A repeating MSH-18 ("ASCII~8859/1",
// "~ISO IR87") lists the sets the message switches between by ISO 2022
// escapes; careflow reads it when at most one of them is not ASCII (that
// one is a superset of ASCII and the message reads as it), or when the
// others are the Japanese sets ISO 2022-JP combines.
func msh18Charset(data []byte) (cs Charset, found bool, err error) {
	seg, ok := peekMSH(data)
	if !ok {
		return Charset{}, false, nil
	}
	f := seg.Field(18)
	if f.Empty() {
		return Charset{}, false, nil
	}
	n := f.Reps()
	if n == 1 {
		raw := bytes.TrimSpace(f.Raw())
		if len(raw) == 0 {
			return Charset{}, false, nil
		}
		if d := lookupBytes(raw); d != nil {
			return Charset{d}, true, nil
		}
		_, msg := lookupDef(string(raw))
		return Charset{}, false, perr(CodeUnknownCharset, "MSH-18", msg)
	}
	var sets []*charsetDef // the distinct non-ASCII sets listed
	japanese := true
	for i := 1; i <= n; i++ {
		raw := bytes.TrimSpace(f.Rep(i).Raw())
		if len(raw) == 0 {
			continue // an empty first repetition means the default, ASCII
		}
		d := lookupBytes(raw)
		if d == nil {
			_, msg := lookupDef(string(raw))
			return Charset{}, false, perr(CodeUnknownCharset, "MSH-18", fmt.Sprintf("repetition %d: %s", i, msg))
		}
		if d == asciiDef || slices.Contains(sets, d) {
			continue
		}
		sets = append(sets, d)
		japanese = japanese && (d == jisX0201Def || d == iso2022JPDef)
	}
	switch {
	case len(sets) == 0:
		return Charset{asciiDef}, true, nil
	case len(sets) == 1:
		return Charset{sets[0]}, true, nil
	case japanese:
		return Charset{iso2022JPDef}, true, nil
	}
	return Charset{}, false, perr(CodeUnknownCharset, "MSH-18", fmt.Sprintf("MSH-18 lists %s and %s: switching between two non-ASCII character sets "+
		"(ISO 2022, MSH-20) is supported only for the Japanese sets of ISO 2022-JP", sets[0].name, sets[1].name))
}

// Decode returns data converted from c to UTF-8, with the errors
// DecodeMessage describes. For UTF-8, ASCII and all-7-bit input it
// returns data itself.
func (c Charset) Decode(data []byte) ([]byte, error) {
	d := c.get()
	if d.kind == kindUTF8 || d.kind == kindASCII {
		if utf8.Valid(data) {
			return data, nil
		}
		i := firstInvalidUTF8(data)
		return nil, badByte(d, data[:i], i, data)
	}
	if err := asciiDelimiters(data, d); err != nil {
		return nil, err
	}
	skip := 0
	if bytes.HasPrefix(data, bom) {
		// A UTF-8 byte-order mark before a message in another set is
		// framing a tool added; the set is what MSH-18 says.
		skip = len(bom)
	}
	src := data[skip:]
	i := firstNonASCII(src, d.escapes)
	if i < 0 {
		return recodeHexEscapes(src, d)
	}
	if d.kind == kindSingle {
		out := make([]byte, i, len(src)+(len(src)-i)/2+8)
		copy(out, src[:i])
		for ; i < len(src); i++ {
			b := src[i]
			if b < utf8.RuneSelf {
				out = append(out, b)
				continue
			}
			r := d.table[b]
			if r == utf8.RuneError {
				return nil, badByte(d, out, skip+i, data)
			}
			out = utf8.AppendRune(out, r)
		}
		return recodeHexEscapes(out, d)
	}
	out, err := d.enc.NewDecoder().Bytes(src)
	if err == nil && !bytes.Contains(out, replacement) {
		return recodeHexEscapes(out, d)
	}
	// Rare: find the first sequence the decoder replaced. A replacement
	// character the set really encodes (GB 18030 has one) is not an error.
	if off, prefix, bad := firstBadMulti(d, src); bad {
		return nil, badByte(d, prefix, skip+off, data)
	}
	if err != nil {
		return nil, perr(CodeBadCharset, "", fmt.Sprintf("decode from %s: %v", d.name, err))
	}
	return recodeHexEscapes(out, d)
}

var replacement = []byte(string(utf8.RuneError))

// Encode returns msg, a UTF-8 message, in c. For UTF-8 it returns msg
// itself, as it does for all-7-bit messages in any ASCII-compatible set.
// Text the set cannot write as it stands is first composed (NFC: "e" plus
// a combining acute becomes "é", which Latin-1 has). A character the set
// still has no code for is a *ParseError with CodeUnrepresentable at its
// segment and field; invalid UTF-8 is CodeBadCharset. Nothing is ever
// replaced by "?".
func (c Charset) Encode(msg []byte) ([]byte, error) {
	d := c.get()
	if !utf8.Valid(msg) {
		i := firstInvalidUTF8(msg)
		return nil, badByte(utf8Def, msg[:i], i, msg)
	}
	if d.kind == kindUTF8 {
		return msg, nil
	}
	if d.readOnly != "" {
		return nil, perr(CodeUnknownCharset, "", fmt.Sprintf("character set %s cannot be written: %s", d.name, d.readOnly))
	}
	if firstNonASCII(msg, false) < 0 {
		return msg, nil
	}
	out, at := encode(d, msg)
	if at < 0 {
		return out, nil
	}
	if !norm.NFC.IsNormal(msg) {
		composed := norm.NFC.Bytes(msg)
		if out, at2 := encode(d, composed); at2 < 0 {
			return out, nil
		}
	}
	return nil, perr(CodeUnrepresentable, locate(msg[:at], delimitersOf(msg)),
		fmt.Sprintf("the character at byte offset %d has no code in %s", at, d.name))
}

// encode converts UTF-8 msg to d; at is the offset of the first character
// d cannot write, or -1.
func encode(d *charsetDef, msg []byte) (out []byte, at int) {
	i := firstNonASCII(msg, false)
	if d.kind == kindASCII {
		return nil, i
	}
	if d.kind == kindSingle {
		rev := d.reverse()
		out = make([]byte, i, len(msg))
		copy(out, msg[:i])
		for i < len(msg) {
			r, n := utf8.DecodeRune(msg[i:])
			if r < utf8.RuneSelf {
				out = append(out, byte(r))
			} else if b, ok := rev[r]; ok {
				out = append(out, b)
			} else {
				return nil, i
			}
			i += n
		}
		return out, -1
	}
	t := d.enc.NewEncoder()
	out = make([]byte, 0, len(msg)+len(msg)/4+16)
	pos := 0
	for {
		nDst, nSrc, err := t.Transform(out[len(out):cap(out)], msg[pos:], true)
		out = out[:len(out)+nDst]
		pos += nSrc
		switch err {
		case nil:
			return out, -1
		case transform.ErrShortDst:
			out = slices.Grow(out, len(msg)-pos+16)
		default:
			return nil, pos
		}
	}
}

// firstBadMulti decodes src one character at a time, to find the offset
// of the first sequence the decoder replaced and the UTF-8 text before
// it. bad is false when every replacement character was really encoded.
func firstBadMulti(d *charsetDef, src []byte) (off int, prefix []byte, bad bool) {
	legit, err := d.enc.NewEncoder().Bytes(replacement)
	if err != nil {
		legit = nil // the set has no replacement character of its own
	}
	t := d.enc.NewDecoder()
	var buf [utf8.UTFMax]byte
	pos, k := 0, 1
	for pos < len(src) {
		// The smallest dst that takes a character takes exactly one.
		nDst, nSrc, err := t.Transform(buf[:k], src[pos:], true)
		start := pos
		pos += nSrc
		switch {
		case nDst > 0:
			r := buf[:nDst]
			if bytes.Equal(r, replacement) && (legit == nil || !bytes.Equal(src[start:pos], legit)) {
				return start, prefix, true
			}
			prefix = append(prefix, r...)
			k = 1
		case err == transform.ErrShortDst && nSrc == 0:
			if k++; k > len(buf) {
				return start, prefix, true
			}
		case err != nil && err != transform.ErrShortDst:
			return start, prefix, true
		case err == nil:
			return 0, prefix, false
		}
	}
	return 0, prefix, false
}

// asciiDelimiters refuses a non-UTF-8 message whose MSH-1 or MSH-2 is not
// ASCII: converted to UTF-8 such a delimiter becomes two bytes and the
// message no longer parses as it was meant.
func asciiDelimiters(data []byte, d *charsetDef) error {
	seg, ok := peekMSH(data)
	if !ok || len(seg.b) < 4 {
		return nil
	}
	if seg.b[3] >= utf8.RuneSelf {
		return perr(CodeBadEncoding, "MSH-1", "field separator is not ASCII, which "+d.name+" cannot keep once converted to UTF-8")
	}
	for _, c := range seg.Field(2).Raw() {
		if c >= utf8.RuneSelf {
			return perr(CodeBadEncoding, "MSH-2", "an encoding character is not ASCII, which "+d.name+" cannot keep once converted to UTF-8")
		}
	}
	return nil
}

// badByte is the CodeBadCharset error for the byte at offset off of data;
// prefix is the UTF-8 text before it.
func badByte(d *charsetDef, prefix []byte, off int, data []byte) *ParseError {
	what := "is not valid in " + d.name
	switch d.kind {
	case kindUTF8:
		what = "is not valid UTF-8"
	case kindASCII:
		what = "is neither ASCII nor UTF-8 (MSH-18 ASCII)"
	}
	return perr(CodeBadCharset, locate(prefix, delimitersOf(data)), fmt.Sprintf("the byte at offset %d %s", off, what))
}

// firstNonASCII returns the index of the first byte of b at 0x80 or above
// (or an ESC, when escapes says 7-bit text can switch sets), or -1.
func firstNonASCII(b []byte, escapes bool) int {
	i := 0
	if !escapes {
		for ; i+8 <= len(b); i += 8 {
			if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
				break
			}
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf || escapes && b[i] == 0x1b {
			return i
		}
	}
	return -1
}
