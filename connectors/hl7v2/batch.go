package hl7v2

import "strconv"

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
