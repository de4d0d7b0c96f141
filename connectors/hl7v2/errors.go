package hl7v2

// Stable error codes carried by ParseError.Code. Other packages branch and
// count on them, so they never change meaning.
const (
	CodeEmpty       = "hl7.empty"        // no bytes, or only whitespace and framing
	CodeNoMSH       = "hl7.no_msh"       // the first segment is not MSH
	CodeBadEncoding = "hl7.bad_encoding" // MSH-1/MSH-2 do not declare usable delimiters
	CodeBadSegment  = "hl7.bad_segment"  // a line that is neither a segment nor text continuing one
	CodeTruncated   = "hl7.truncated"    // the MSH ends before MSH-9
	CodeBatch       = "hl7.batch"        // a batch (FHS/BHS) or several messages: use SplitBatch
	CodeTooLarge    = "hl7.too_large"    // 2 GiB or more
	CodeNoMSA       = "hl7.no_msa"       // an acknowledgement without MSA
	CodeBadAckCode  = "hl7.bad_ack_code" // MSA-1 is not AA, AE, AR, CA, CE or CR
)

// ParseError says what is wrong with a message and where, in terms an
// analyst can use to find the byte. It never contains message content.
type ParseError struct {
	Code     string // one of the Code* constants
	Location string // "MSH-2", "segment 3", or "" when the whole input is at fault
	Msg      string // human explanation, free of patient data
}

func (e *ParseError) Error() string {
	if e.Location != "" {
		return e.Code + " at " + e.Location + ": " + e.Msg
	}
	return e.Code + ": " + e.Msg
}

func perr(code, loc, msg string) *ParseError {
	return &ParseError{Code: code, Location: loc, Msg: msg}
}
