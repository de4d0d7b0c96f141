// This file checks what content a destination receives and in which
// encoding: its character set, and the canonical fields it may receive.

package config

import "strings"

// checkCharset checks a charset key. PENDING: hl7v2's charset catalogue.
func (d *decoder) checkCharset(key, name string) {
	if strings.TrimSpace(name) == "" {
		d.problemAt(key, "charset must not be empty (the default is UTF-8)")
	}
}

// isUTF8Name reports whether name spells UTF-8.
func isUTF8Name(name string) bool {
	n := strings.ToUpper(strings.NewReplacer(" ", "", "-", "", "_", "").Replace(name))
	return n == "UTF8" || n == "UNICODEUTF8"
}

// checkFields checks a destination's fields allow-list. PENDING: avro's
// canonical path catalogue.
func (d *decoder) checkFields(key string, fields []string) {}
