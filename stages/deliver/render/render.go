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

import ()

// Target says how one destination wants its messages.
type Target struct {
	Format               string // avro.FormatHL7v2 or avro.FormatJSON
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
