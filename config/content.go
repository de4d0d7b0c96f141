// This file checks what content a destination receives and in which
// encoding: its character set, and the canonical fields it may receive.

package config

import (
	"errors"
	"fmt"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// checkCharset checks an interface's charset: one careflow can read.
func (d *decoder) checkCharset(key, name string) {
	if err := hl7v2.CheckCharset(name); err != nil {
		d.problemAt(key, err.Error())
	}
}

// checkDestinationCharset checks a destination's charset: one careflow can
// write.
func (d *decoder) checkDestinationCharset(key, name string) {
	if err := hl7v2.CheckDestinationCharset(name); err != nil {
		d.problemAt(key, err.Error())
	}
}

// isUTF8Name reports whether name is a set whose text is UTF-8 (UTF-8,
// or ASCII, which is UTF-8 too).
func isUTF8Name(name string) bool {
	cs, err := hl7v2.LookupCharset(name)
	return err == nil && cs.IsUTF8()
}

// checkFields checks a destination's fields allow-list against the
// canonical event's paths. A key written with no value would read as
// "everything": that must be said, not left to a blank.
func (d *decoder) checkFields(key string, fields []string) {
	if fields == nil {
		if d.written(key) {
			d.problemAt(key, "fields has no value: list the canonical fields this destination may receive, "+
				"write [] for the envelope only, or remove the key to send everything")
		}
		return
	}
	for _, err := range avro.CheckEventFields(fields) {
		var fe *avro.FieldPathError
		if errors.As(err, &fe) {
			d.problemAt(fmt.Sprintf("%s[%d]", key, fe.Index), fe.Error())
			continue
		}
		d.problemAt(key, err.Error())
	}
}
