package hl7v2

import "bytes"

// Unescape appends src to dst with HL7 escape sequences decoded, and returns
// the extended slice:
//
//	\F\ \S\ \T\ \R\ \E\ \P\  the field, component, subcomponent, repetition,
//	                         escape and truncation characters of d
//	\Xhhhh...\               the bytes the hex digits spell (any charset)
//	\.br\                    a line feed "\n" (not CR: a CR in a value would
//	                         read as a segment end if ever written raw)
//	\.sp\ \.spN\             N line feeds (default 1)
//	\.ce\                    a line feed (centred text starts a new line)
//	\H\ \N\ \.fi\ \.nf\      dropped: highlighting and fill mode are display
//	\.in±N\ \.ti±N\ \.skN\   hints with no meaning in plain text
//
// Anything else, including charset switches (\C..\, \M..\), site-defined
// \Z..\ sequences, malformed hex and an escape character with no closing
// one, is kept verbatim. With no escape character declared, src is
// appended unchanged.
func Unescape(dst, src []byte, d Delimiters) []byte {
	esc := d.Escape
	if esc == 0 {
		return append(dst, src...)
	}
	for {
		i := bytes.IndexByte(src, esc)
		if i < 0 {
			return append(dst, src...)
		}
		dst = append(dst, src[:i]...)
		src = src[i:]
		j := bytes.IndexByte(src[1:], esc)
		if j < 0 {
			return append(dst, src...)
		}
		seq := src[1 : 1+j]
		var ok bool
		dst, ok = unescapeSeq(dst, seq, d)
		if !ok {
			// Keep the opening escape verbatim and rescan after it, so
			// that a stray escape character does not swallow the real
			// sequence that follows.
			dst = append(dst, esc)
			src = src[1:]
			continue
		}
		src = src[2+j:]
	}
}

func unescapeSeq(dst, seq []byte, d Delimiters) ([]byte, bool) {
	if len(seq) == 0 {
		return dst, false
	}
	if len(seq) == 1 {
		var c byte
		switch seq[0] {
		case 'F':
			c = d.Field
		case 'S':
			c = d.Component
		case 'T':
			c = d.Subcomponent
		case 'R':
			c = d.Repetition
		case 'E':
			c = d.Escape
		case 'P':
			c = d.Truncation
		case 'H', 'N':
			return dst, true
		}
		if c == 0 {
			return dst, false
		}
		return append(dst, c), true
	}
	switch seq[0] {
	case 'X', 'x':
		hex := seq[1:]
		if len(hex)%2 != 0 {
			return dst, false
		}
		for _, c := range hex {
			if _, ok := unhex(c); !ok {
				return dst, false
			}
		}
		for i := 0; i < len(hex); i += 2 {
			hi, _ := unhex(hex[i])
			lo, _ := unhex(hex[i+1])
			dst = append(dst, hi<<4|lo)
		}
		return dst, true
	case '.':
		return formatting(dst, seq[1:])
	}
	return dst, false
}

// formatting handles the formatted-text (FT) commands after the dot.
func formatting(dst, cmd []byte) ([]byte, bool) {
	switch {
	case string(cmd) == "br" || string(cmd) == "ce":
		return append(dst, '\n'), true
	case string(cmd) == "fi" || string(cmd) == "nf":
		return dst, true
	case bytes.HasPrefix(cmd, []byte("sp")):
		n, ok := smallInt(cmd[2:], 1)
		if !ok {
			return dst, false
		}
		for ; n > 0; n-- {
			dst = append(dst, '\n')
		}
		return dst, true
	case bytes.HasPrefix(cmd, []byte("in")) || bytes.HasPrefix(cmd, []byte("ti")) || bytes.HasPrefix(cmd, []byte("sk")):
		arg := cmd[2:]
		if len(arg) > 0 && (arg[0] == '+' || arg[0] == '-') {
			arg = arg[1:]
		}
		_, ok := smallInt(arg, 0)
		return dst, ok
	}
	return dst, false
}

// smallInt parses up to three digits; empty gives def.
func smallInt(b []byte, def int) (int, bool) {
	if len(b) == 0 {
		return def, true
	}
	if len(b) > 3 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Escape appends s to dst with every character of d that would change the
// message's structure replaced by its escape sequence (\F\ \S\ \T\ \R\ \E\,
// and \P\ when d declares a truncation character). A line feed becomes
// \.br\, and a carriage return, NUL or MLLP framing byte (0x0b, 0x1c) a
// hex escape, so Unescape(Escape(s)) == s for any s and no value can break
// a segment or an MLLP frame.
// With no escape character declared, s is appended unchanged: such a
// message cannot carry delimiter characters in values.
func Escape(dst []byte, s string, d Delimiters) []byte {
	if d.Escape == 0 {
		return append(dst, s...)
	}
	dotIsDelim := d.Field == '.' || d.Component == '.' || d.Repetition == '.' ||
		d.Escape == '.' || d.Subcomponent == '.' || d.Truncation == '.'
	last := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch c := s[i]; {
		case c == '\n' && !dotIsDelim:
			rep = "\\.br\\"
		case c == '\n':
			rep = "\\X0A\\" // with . as a delimiter, \.br\ would be split
		case c == '\r':
			rep = "\\X0D\\"
		case c == 0:
			// Parse strips NUL padding after a message; escaped, a NUL
			// in a value survives.
			rep = "\\X00\\"
		case c == 0x0b:
			rep = "\\X0B\\" // MLLP start block: would break framing
		case c == 0x1c:
			rep = "\\X1C\\" // MLLP end block
		case c == d.Field:
			rep = "F"
		case c == d.Component:
			rep = "S"
		case c == d.Subcomponent:
			rep = "T"
		case c == d.Repetition:
			rep = "R"
		case c == d.Escape:
			rep = "E"
		case c == d.Truncation:
			rep = "P"
		default:
			continue
		}
		dst = append(dst, s[last:i]...)
		last = i + 1
		if len(rep) == 1 {
			dst = append(dst, d.Escape, rep[0], d.Escape)
		} else {
			// Line breaks: written with the declared escape character.
			dst = append(dst, d.Escape)
			dst = append(dst, rep[1:len(rep)-1]...)
			dst = append(dst, d.Escape)
		}
	}
	return append(dst, s[last:]...)
}
