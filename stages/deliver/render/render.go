// Package render turns a canonical ClinicalEvent into the bytes a
// destination receives: an HL7 v2 message at the destination's version
// (HL7) or careflow's JSON document (JSON). It knows nothing of Kafka or
// transports; deliver calls it once per attempt.
//
// Events hold UTF-8. HL7 is built in UTF-8 and converted to the
// destination's character set as the last step; JSON stays UTF-8. A
// character the destination's set cannot hold, or a string that is not
// UTF-8 (an event written before normalise decoded MSH-18), is an error
// naming where it is, never a "?" or U+FFFD.
//
// docs/routing.md describes the HL7 layout per event type, the JSON shape
// and the control id rule.
package render

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/careflow-health/careflow/avro"
)

// Formats a Target can name.
const (
	FormatHL7  = "hl7v2"
	FormatJSON = "json"
)

// Target says how one destination wants its messages.
type Target struct {
	Format               string // FormatHL7 or FormatJSON
	Version              string // HL7 version written to MSH-12, e.g. "2.5.1"
	SendingApplication   string // MSH-3
	SendingFacility      string // MSH-4
	ReceivingApplication string // MSH-5
	ReceivingFacility    string // MSH-6
	ProcessingID         string // MSH-11; default "P"
	// Charset is the character set an HL7 destination receives, any name
	// hl7v2.DestinationCharset accepts ("8859/1", "WINDOWS-1252"); "" is
	// UTF-8. JSON is always UTF-8 (RFC 8259) and ignores it.
	Charset string
}

// controlIDLen is the most HL7 allows in MSH-10 (ST, 20 characters).
const controlIDLen = 20

// ControlID returns the outbound MSH-10 for ev sent to destination: the
// first 20 hex digits of SHA-256(event id, destination). It depends on
// nothing else, so a retry, a restart or a replay of the same event resends
// the same control id and the receiver can drop the duplicate, while two
// destinations never share one.
func ControlID(ev *avro.ClinicalEvent, destination string) string {
	h := sha256.New()
	h.Write([]byte(ev.EventID))
	h.Write([]byte{0}) // separator: ("ab","c") and ("a","bc") must differ
	h.Write([]byte(destination))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))[:controlIDLen]
}
