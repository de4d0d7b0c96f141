package hl7v2

import (
	"strconv"
	"strings"
	"time"
)

// AckCode is MSA-1, the acknowledgement code (HL7 table 0008).
type AckCode string

// Acknowledgement codes. Original mode uses the application codes (AA, AE,
// AR); enhanced mode's accept acknowledgement uses the commit codes.
const (
	AckAA AckCode = "AA" // application accept
	AckAE AckCode = "AE" // application error
	AckAR AckCode = "AR" // application reject
	AckCA AckCode = "CA" // commit accept
	AckCE AckCode = "CE" // commit error
	AckCR AckCode = "CR" // commit reject
)

// Valid reports whether c is one of the six codes of table 0008.
func (c AckCode) Valid() bool {
	switch c {
	case AckAA, AckAE, AckAR, AckCA, AckCE, AckCR:
		return true
	}
	return false
}

// Accepted reports whether c says the message was taken (AA or CA).
func (c AckCode) Accepted() bool { return c == AckAA || c == AckCA }

// AckError is one ERR segment: what went wrong and where.
type AckError struct {
	// Code is from HL7 table 0357: "100" segment sequence error, "101"
	// required field missing, "102" data type error, "103" table value not
	// found, "200" unsupported message type, "201" unsupported event code,
	// "202" unsupported processing ID, "203" unsupported version ID, "204"
	// unknown key identifier, "205" duplicate key, "206" application record
	// locked, "207" application internal error.
	Code string
	// Location is an HL7 location such as "PID-7", "PID-3[2].1" or
	// "OBX[2]-5"; "" when the error is not about one place.
	Location string
	Severity string // E (error), W (warning), I (information); "" means E
	Text     string // for a person; never patient data
	// ApplicationCode is the receiving application's own error code
	// (ERR-5, from 2.5), e.g. careflow's exception code "order_rejected".
	ApplicationCode string
}

// ACKOptions are the parts of an ACK that do not come from the message
// being acknowledged.
type ACKOptions struct {
	ControlID string    // MSH-10 of the ACK; "" derives one from Now
	Now       time.Time // MSH-7; zero means time.Now()
	Text      string    // MSA-3
	Errors    []AckError
	// SendingApplication and SendingFacility override the ACK's MSH-3 and
	// MSH-4, which otherwise echo the inbound MSH-5 and MSH-6.
	SendingApplication, SendingFacility string
}

// BuildACK writes the acknowledgement of a message whose header is in and
// delimiters d (invalid delimiters fall back to DefaultDelimiters):
//
//   - MSH: sender and receiver swapped; MSH-9 "ACK^<trigger>^ACK" (the
//     structure component only from 2.3.1, where MSG.3 exists; no trigger
//     gives plain "ACK"); MSH-11, MSH-12 and MSH-18 as received.
//   - MSA: MSA-1 code, MSA-2 the inbound MSH-10, MSA-3 opts.Text.
//   - one ERR per error. Before 2.5, ERR-1 (ELD): segment ^ sequence ^
//     field ^ code&text&HL70357. From 2.5 (and when MSH-12 is empty or
//     unreadable), ERR-2 (ERL) segment ^ sequence ^ field ^ repetition ^
//     component ^ subcomponent, ERR-3 code^text^HL70357, ERR-4 severity,
//     ERR-8 text.
func BuildACK(in Header, d Delimiters, code AckCode, opts ACKOptions) []byte {
	b := NewBuilder(d)
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	controlID := opts.ControlID
	if controlID == "" {
		controlID = now.UTC().Format("20060102150405.000000")
		controlID = controlID[:14] + controlID[15:]
	}
	h := Header{
		SendingApplication:   cmpOr(opts.SendingApplication, in.ReceivingApplication),
		SendingFacility:      cmpOr(opts.SendingFacility, in.ReceivingFacility),
		ReceivingApplication: in.SendingApplication,
		ReceivingFacility:    in.SendingFacility,
		DateTime:             FormatTime(now),
		MessageType:          "ACK",
		TriggerEvent:         in.TriggerEvent,
		ControlID:            controlID,
		ProcessingID:         in.ProcessingID,
		Version:              in.Version,
		Charset:              in.Charset,
	}
	v := parseVersion(in.Version)
	if in.TriggerEvent != "" && v >= 231 {
		h.MessageStructure = "ACK"
	}
	b.MSH(h)
	b.Segment("MSA").Set("1", string(code)).Set("2", in.ControlID).Set("3", opts.Text)
	for _, e := range opts.Errors {
		WriteERR(b, in.Version, e)
	}
	return b.Bytes()
}

// WriteERR appends e to b as one ERR segment in the layout of HL7 version
// (see BuildACK).
func WriteERR(b *Builder, version string, e AckError) {
	v := parseVersion(version)
	{
		loc := parseLocation(e.Location)
		err := b.Segment("ERR")
		text := cmpOr(e.Text, errText(e.Code))
		if v < 250 {
			if loc.seg != "" {
				err.Set("1.1", loc.seg).Set("1.2", itoaNZ(loc.segIdx)).Set("1.3", itoaNZ(loc.field))
			}
			err.Set("1.4.1", e.Code).Set("1.4.2", text)
			if e.Code != "" {
				err.Set("1.4.3", "HL70357")
			}
			return
		}
		if loc.seg != "" {
			err.Set("2.1", loc.seg).Set("2.2", itoaNZ(loc.segIdx)).Set("2.3", itoaNZ(loc.field)).
				Set("2.4", itoaNZ(loc.rep)).Set("2.5", itoaNZ(loc.comp)).Set("2.6", itoaNZ(loc.sub))
		}
		err.Set("3.1", cmpOr(e.Code, "207")).Set("3.2", errText(cmpOr(e.Code, "207"))).Set("3.3", "HL70357")
		err.Set("4", cmpOr(e.Severity, "E"))
		if e.ApplicationCode != "" {
			err.Set("5.1", e.ApplicationCode).Set("5.3", "careflow")
		}
		err.Set("8", e.Text)
	}
}

// parseLocation reads "PID-3[2].1"; a location that is not a path gives a
// zero path (the error is then reported without a location). Repetition
// and segment sequence default to 1 when a field is named, as ERL requires.
func parseLocation(s string) path {
	p, ok := parsePath(s)
	if !ok {
		// A bare segment ID ("PID") is a valid location too.
		if len(s) == 3 && segmentID([]byte(s), 0) == idOK {
			return path{seg: s, segIdx: 1}
		}
		return path{}
	}
	if p.rep == 0 {
		p.rep = 1
	}
	return p
}

func itoaNZ(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// errText is the table 0357 description of code.
func errText(code string) string {
	switch code {
	case "0":
		return "Message accepted"
	case "100":
		return "Segment sequence error"
	case "101":
		return "Required field missing"
	case "102":
		return "Data type error"
	case "103":
		return "Table value not found"
	case "104":
		return "Value too long"
	case "200":
		return "Unsupported message type"
	case "201":
		return "Unsupported event code"
	case "202":
		return "Unsupported processing id"
	case "203":
		return "Unsupported version id"
	case "204":
		return "Unknown key identifier"
	case "205":
		return "Duplicate key identifier"
	case "206":
		return "Application record locked"
	case "207":
		return "Application internal error"
	}
	return ""
}

// parseVersion turns "2.3.1" into 231 and "2.5" into 250; an empty or
// unreadable version gives 999 (newest rules).
func parseVersion(v string) int {
	v = strings.TrimSpace(v)
	parts := strings.SplitN(v, ".", 4)
	if len(parts) < 2 || parts[0] != "2" {
		return 999
	}
	minor, err := strconv.Atoi(parts[1])
	if err != nil || minor < 0 || minor > 9 {
		return 999
	}
	patch := 0
	if len(parts) > 2 {
		if patch, err = strconv.Atoi(parts[2]); err != nil || patch < 0 || patch > 9 {
			patch = 0
		}
	}
	return 200 + minor*10 + patch
}

// AckModeEnhanced reports whether the sender asked for enhanced
// acknowledgement: MSH-15 (accept ack type) or MSH-16 (application ack
// type) is valued. Then the receiver answers with a commit ACK (CA, CE,
// CR) at once, and an application ACK later only as MSH-16 asks. With
// both empty the message is in original mode: one ACK, AA/AE/AR.
func AckModeEnhanced(h Header) bool {
	return strings.TrimSpace(h.AcceptAckType) != "" || strings.TrimSpace(h.AppAckType) != ""
}

// AppAckRequested is the application acknowledgement the sender of a
// message with header h asks for: "AL" (always) or "ER" (only on error),
// or "" for none: original mode (whose one ACK is the application's),
// MSH-16 NE or SU, or MSH-16 empty, which careflow takes as NE rather
// than send an unsolicited message.
func AppAckRequested(h Header) string {
	if !AckModeEnhanced(h) {
		return ""
	}
	switch m := strings.ToUpper(strings.TrimSpace(h.AppAckType)); m {
	case "AL", "ER":
		return m
	}
	return ""
}

// ACK is a parsed acknowledgement.
type ACK struct {
	Code      AckCode
	ControlID string // MSA-2: the MSH-10 of the message acknowledged
	Text      string // MSA-3
	Errors    []AckError
}

// ParseACK reads an acknowledgement of any version: MSA-1 must be a valid
// code. ERR segments are read in both layouts (ERR-1 before 2.5, ERR-2/3/4/8
// from 2.5); a 2.2–2.4 MSA-6 error condition without ERR becomes one error.
func ParseACK(data []byte) (ACK, error) {
	m, err := Parse(data)
	if err != nil {
		return ACK{}, err
	}
	return ReadAnswer(m)
}

// ReadAnswer reads the MSA and ERR segments of a parsed message: an ACK,
// or a response that carries them (ORR^O02, ORL^O22).
func ReadAnswer(m *Message) (ACK, error) {
	msa, ok := m.Segment("MSA")
	if !ok {
		return ACK{}, perr(CodeNoMSA, "", "acknowledgement has no MSA segment")
	}
	a := ACK{
		Code:      AckCode(strings.TrimSpace(msa.Field(1).String())),
		ControlID: msa.Field(2).String(),
		Text:      msa.Field(3).String(),
	}
	if !a.Code.Valid() {
		return ACK{}, perr(CodeBadAckCode, "MSA-1", "acknowledgement code is not AA, AE, AR, CA, CE or CR")
	}
	for _, e := range m.SegmentsNamed("ERR") {
		a.Errors = append(a.Errors, errsOf(e)...)
	}
	if len(a.Errors) == 0 {
		if c := msa.Field(6); !c.Empty() {
			a.Errors = append(a.Errors, AckError{Code: c.Component(1).String(), Severity: "E", Text: c.Component(2).String()})
		}
	}
	return a, nil
}

// errsOf reads one ERR segment in whichever layout it uses.
func errsOf(s Segment) []AckError {
	if !s.Field(2).Empty() || !s.Field(3).Empty() {
		erl := s.Field(2).Rep(1)
		e := AckError{
			Code:     s.Field(3).Component(1).String(),
			Severity: s.Field(4).String(),
			Text:     s.Field(8).String(),
			Location: formatLocation(erl.Component(1).String(), erl.Component(2).String(), erl.Component(3).String(),
				erl.Component(4).String(), erl.Component(5).String(), erl.Component(6).String()),
		}
		if e.Text == "" {
			e.Text = s.Field(3).Component(2).String()
		}
		return []AckError{e}
	}
	f := s.Field(1)
	var out []AckError
	for i := 1; i <= f.Reps(); i++ {
		eld := f.Rep(i)
		code := eld.Component(4)
		out = append(out, AckError{
			Code:     code.Sub(1).String(),
			Severity: "E",
			Text:     code.Sub(2).String(),
			Location: formatLocation(eld.Component(1).String(), eld.Component(2).String(), eld.Component(3).String(), "", "", ""),
		})
	}
	return out
}

// formatLocation writes ERL/ELD parts as "PID[2]-3[2].1.1", leaving out
// sequence and repetition when 1 and stopping at the first empty part.
func formatLocation(seg, seq, field, rep, comp, sub string) string {
	if seg == "" {
		return ""
	}
	var sb strings.Builder
	sb.WriteString(seg)
	if seq != "" && seq != "1" {
		sb.WriteString("[" + seq + "]")
	}
	if field == "" {
		return sb.String()
	}
	sb.WriteString("-" + field)
	if rep != "" && rep != "1" {
		sb.WriteString("[" + rep + "]")
	}
	if comp != "" {
		sb.WriteString("." + comp)
		if sub != "" {
			sb.WriteString("." + sub)
		}
	}
	return sb.String()
}
