package hl7v2

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// SplitBatch returns the messages of a batch file (FHS/BHS ... BTS/FTS
// envelopes, nested or not) or of plain concatenated messages. Each
// message aliases data: from its MSH to the segment before the next MSH or
// envelope segment, with its terminators. Envelope segments are dropped;
// their counts (BTS-1, FTS-1) are not checked, because many senders get
// them wrong. A batch without any MSH is an hl7.no_msh error; a line
// before the first MSH that is not an envelope segment is hl7.bad_segment.
func SplitBatch(data []byte) ([][]byte, error) {
	body := trimFraming(data)
	if len(body) == 0 {
		return nil, perr(CodeEmpty, "", "no HL7 content")
	}
	var out [][]byte
	msgStart := -1
	segNo := 0
	var sep byte // the field separator of the message being read; 0 outside one
	var sc lineScanner
	sc.init(body)
	for {
		start, end, ok := sc.next()
		if !ok {
			break
		}
		line := body[start:end]
		if isBlank(line) {
			continue
		}
		segNo++
		name := ""
		if len(line) >= 3 {
			name = string(line[:3])
		}
		switch name {
		case "MSH", "FHS", "BHS", "BTS", "FTS":
			if isBoundary(line, sep) {
				if msgStart >= 0 {
					out = append(out, body[msgStart:start])
					msgStart, sep = -1, 0
				}
				if name == "MSH" {
					msgStart = start
					if len(line) > 3 {
						sep = line[3]
					}
				}
				continue
			}
		}
		if msgStart < 0 {
			return nil, perr(CodeBadSegment, "segment "+strconv.Itoa(segNo), "segment outside any message in the batch")
		}
	}
	if msgStart >= 0 {
		out = append(out, body[msgStart:])
	}
	if len(out) == 0 {
		return nil, perr(CodeNoMSH, "", "batch holds no MSH segment")
	}
	return out, nil
}

// isBoundary reports whether a line beginning with an envelope segment's
// name starts a message or an envelope. Inside a message a line whose
// fourth byte is not the message's field separator is, as Parse reads it,
// text continuing a segment ("MSH-9 was wrong", "FTS-positive culture").
func isBoundary(line []byte, sep byte) bool {
	if len(line) == 3 {
		return true
	}
	return delimOK(line[3]) && (sep == 0 || line[3] == sep)
}

// SplitFile reads a file of HL7 messages as people save them: CR LF or LF
// line endings become the CR that HL7 requires, blank lines are dropped, a
// UTF-8 byte-order mark and MLLP framing bytes (a capture) are removed, and
// a batch envelope (FHS/BHS ... BTS/FTS) is unwrapped, as SplitBatch does.
// Every message is a fresh copy. A file with no MSH line at all is
// hl7.no_msh (hl7.empty when it holds only whitespace); text before the
// first MSH that is not an envelope segment is hl7.bad_segment at the
// file's line ("line 3"), rather than sent as a message of its own or
// quietly dropped.
func SplitFile(data []byte) ([][]byte, error) {
	data = bytes.TrimPrefix(data, bom)
	var norm []byte
	var lineNos []int // the file's line of each line of norm
	hasMSH := false
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := indexLineEnd(data); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(bytes.TrimLeft(trimCR(line), "\x0b"), "\x1c")
		if isBlank(line) {
			continue
		}
		name := ""
		if len(line) >= 3 {
			name = string(line[:3])
		}
		switch {
		case name == "MSH":
			hasMSH = true
		case !hasMSH && name != "FHS" && name != "BHS":
			if !bytes.Contains(data, []byte("MSH")) {
				return nil, perr(CodeNoMSH, "", "the file holds no MSH segment")
			}
			return nil, perr(CodeBadSegment, "line "+strconv.Itoa(n), "text before the first MSH segment")
		}
		norm = append(append(norm, line...), '\r')
		lineNos = append(lineNos, n)
	}
	if len(norm) == 0 {
		return nil, perr(CodeEmpty, "", "no HL7 content")
	}
	if !hasMSH {
		return nil, perr(CodeNoMSH, "", "the file holds no MSH segment")
	}
	msgs, err := SplitBatch(norm)
	if err != nil {
		// SplitBatch counts the lines of norm; say the file's line.
		var pe *ParseError
		if errors.As(err, &pe) {
			if k, ok := strings.CutPrefix(pe.Location, "segment "); ok {
				if i, convErr := strconv.Atoi(k); convErr == nil && i >= 1 && i <= len(lineNos) {
					pe.Location = "line " + strconv.Itoa(lineNos[i-1])
				}
			}
		}
		return nil, err
	}
	for i, m := range msgs {
		m = m[:len(m):len(m)] // an append to one must not overwrite the next
		if m[len(m)-1] != '\r' {
			m = append(m, '\r') // SplitBatch trims the file's last terminator
		}
		msgs[i] = m
	}
	return msgs, nil
}

// indexLineEnd is the index of the first LF, or of a CR not followed by
// LF, in b; -1 if there is none.
func indexLineEnd(b []byte) int {
	for i, c := range b {
		if c == '\n' || (c == '\r' && (i+1 == len(b) || b[i+1] != '\n')) {
			return i
		}
	}
	return -1
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}
