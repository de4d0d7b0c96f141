// Package hl7v2 reads and writes HL7 version 2 messages (2.1 to 2.8) as real
// feeds send them: any delimiters MSH-1/MSH-2 declare, CR, LF or CRLF
// segment terminators, Z-segments, empty and repeated fields, bytes in any
// character set, and the framing debris (UTF-8 BOM, trailing 0x1c, blank
// lines) that MLLP and file drops leave behind.
//
// Parse does not copy its input and indexes lazily: it records where each
// segment starts and ends, and finds fields, repetitions, components and
// subcomponents only when asked, so a message that is routed on three
// header fields costs little more than one pass over its bytes.
//
// Values are addressed with paths in the form analysts use ("PID-3[2].1",
// "OBX[2]-5"; see Message.Get). The package also builds messages (Builder),
// writes and reads acknowledgements (BuildACK, ParseACK) and splits batch
// files (SplitBatch). docs/hl7v2.md describes the accepted input, the path
// syntax, the ACK rules and escape handling.
package hl7v2
