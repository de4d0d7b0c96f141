package hl7v2

// This file carries \X..\ hex escapes across a character-set conversion.
// An escape spells bytes in the message's own character set (\XE9\ is é
// in an 8859/1 message); once the message is UTF-8, those bytes must be
// the character's UTF-8 bytes (\XC3A9\), or the escape would spell an
// invalid byte, or another character, after unescaping.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// recodeHexEscapes rewrites every \Xhh..\ escape of utf8Msg (converted from
// d) so that its bytes are UTF-8. An escape that is not hex, or whose
// bytes are not valid in d, is an error at its field.
func recodeHexEscapes(utf8Msg []byte, d *charsetDef) ([]byte, error) {
	msh, ok := peekMSH(utf8Msg)
	esc := msh.d.Escape
	if !ok || !hasHexEscape(utf8Msg, esc) {
		return utf8Msg, nil
	}
	out := make([]byte, 0, len(utf8Msg)+16)
	rest := utf8Msg
	for {
		i := bytes.IndexByte(rest, esc)
		if i < 0 || i+1 >= len(rest) {
			return append(out, rest...), nil
		}
		if rest[i+1] != 'X' && rest[i+1] != 'x' {
			out = append(out, rest[:i+2]...)
			rest = rest[i+2:]
			continue
		}
		end := bytes.IndexByte(rest[i+2:], esc)
		if end < 0 {
			// An escape with no end is kept as text, as Unescape keeps it.
			return append(out, rest...), nil
		}
		digits := rest[i+2 : i+2+end]
		raw, err := hex.DecodeString(string(digits))
		if err != nil {
			off := len(utf8Msg) - len(rest) + i
			return nil, perr(CodeBadCharset, locate(utf8Msg[:off], msh.d), fmt.Sprintf("the \\X..\\ escape at offset %d is not hex", off))
		}
		text, err := decodeBytes(d, raw)
		if err != nil {
			off := len(utf8Msg) - len(rest) + i
			return nil, perr(CodeBadCharset, locate(utf8Msg[:off], msh.d),
				fmt.Sprintf("the \\X..\\ escape at offset %d spells bytes that are not valid in %s", off, d.name))
		}
		out = append(out, rest[:i+2]...)
		out = append(out, bytes.ToUpper([]byte(hex.EncodeToString(text)))...)
		out = append(out, esc)
		rest = rest[i+2+end+1:]
	}
}

// decodeBytes converts raw, bytes in d, to UTF-8.
func decodeBytes(d *charsetDef, raw []byte) ([]byte, error) {
	switch d.kind {
	case kindUTF8, kindASCII:
		if !utf8.Valid(raw) {
			return nil, fmt.Errorf("not UTF-8")
		}
		return raw, nil
	case kindSingle:
		out := make([]byte, 0, 2*len(raw))
		for _, b := range raw {
			if b < utf8.RuneSelf {
				out = append(out, b)
				continue
			}
			r := d.table[b]
			if r == utf8.RuneError {
				return nil, fmt.Errorf("byte %#x undefined", b)
			}
			out = utf8.AppendRune(out, r)
		}
		return out, nil
	}
	out, err := d.enc.NewDecoder().Bytes(raw)
	if err != nil || bytes.Contains(out, replacement) {
		return nil, fmt.Errorf("undefined sequence")
	}
	return out, nil
}
