package hl7v2

// Delimiters are the separator characters a message declares in MSH-1 and
// MSH-2. A zero byte means the message declares no such character (a
// three-character MSH-2 has no subcomponent separator), in which case that
// level is never split.
type Delimiters struct {
	Field, Component, Repetition, Escape, Subcomponent byte
	// Truncation is 0 unless MSH-2 has a fifth character (HL7 2.7+).
	Truncation byte
}

// DefaultDelimiters are the delimiters HL7 recommends: |^~\&.
var DefaultDelimiters = Delimiters{'|', '^', '~', '\\', '&', 0}

// EncodingChars returns MSH-2 as these delimiters write it.
func (d Delimiters) EncodingChars() string {
	b := make([]byte, 0, 5)
	for _, c := range [...]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent, d.Truncation} {
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// Valid reports whether d can delimit a message: a field separator and a
// component separator, no two alike, none alphanumeric or a line break.
func (d Delimiters) Valid() bool {
	_, ok := delimsFrom(d.Field, []byte(d.EncodingChars()))
	return ok && d.Component != 0
}

// delimsFrom builds Delimiters from MSH-1 and MSH-2. It accepts an MSH-2 of
// three to five characters: feeds with three (no subcomponent separator)
// exist; fewer is more likely a corrupt header than a deliberate choice.
func delimsFrom(field byte, enc []byte) (Delimiters, bool) {
	if len(enc) < 3 || len(enc) > 5 || !delimOK(field) {
		return Delimiters{}, false
	}
	var all [6]byte
	all[0] = field
	for i, c := range enc {
		if !delimOK(c) {
			return Delimiters{}, false
		}
		for _, prev := range all[:i+1] {
			if c == prev {
				return Delimiters{}, false
			}
		}
		all[i+1] = c
	}
	return Delimiters{all[0], all[1], all[2], all[3], all[4], all[5]}, true
}

// delimOK rejects characters that cannot be delimiters because they occur in
// ordinary values or end segments.
func delimOK(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return false
	case c < 0x20, c == ' ', c == 0x7f:
		// Line breaks end segments; other control bytes are MLLP framing
		// or padding that transports add and strip.
		return false
	}
	return true
}
