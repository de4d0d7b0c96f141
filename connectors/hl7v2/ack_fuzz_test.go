// This file fuzzes ParseACK, which reads the acknowledgements remote
// systems send back, and its round trip with BuildACK.

package hl7v2

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzAckCodes are the acknowledgement codes FuzzParseACK builds with.
var fuzzAckCodes = []AckCode{AckAA, AckAE, AckAR, AckCA, AckCE, AckCR}

// fuzzErrCodes are table 0357 codes, plus one outside it.
var fuzzErrCodes = []string{"0", "100", "101", "102", "103", "104", "200", "201", "202", "203", "204", "205", "206", "207", "ZZ9"}

// FuzzParseACK: ParseACK never panics or modifies its input; its errors
// are *ParseError; an ACK it accepts has a code of table 0008 and the
// MSA-1 and MSA-2 of the message, and fails only for want of MSA or a
// valid MSA-1 when Parse accepts the input. Then, for whatever header
// PeekHeader finds in the input, BuildACK followed by ParseACK gives back
// the code, the control id acknowledged (MSA-2 = the input's MSH-10), the
// text, and the error's code, location and text, in both ERR layouts
// (ERR-1 before 2.5, ERR-2/3/8 from 2.5).
func FuzzParseACK(f *testing.F) {
	for _, data := range messageSeeds(f) {
		f.Add(data, uint8(0), uint8(13), "PID-3[2].1", "")
	}
	f.Add([]byte("MSH|^~\\&|LAB|L|EHR|H|20240101||ACK^A01^ACK|A1|P|2.5.1\rMSA|AE|C1|bad\rERR||PID^1^3^2^1|101^Required field missing^HL70357|E||||PID-3 missing"),
		uint8(1), uint8(2), "PID[2]-3[2].4.1", "PID-3 missing")
	f.Add([]byte("MSH|^~\\&|LAB|L|EHR|H|20240101||ACK|A1|P|2.3\rMSA|AR|C1|||204^Unknown key"), uint8(2), uint8(10), "OBX[3]-5", "text with | and ^")
	f.Add([]byte("MSH|^~\\|LAB|L|EHR|H|20240101||ADT^A01|C\\F\\1|P|2.4"), uint8(5), uint8(0), "MSH", "line\nbreak")
	f.Add([]byte("MSH|^~\\&|A|B|C|D|20240101||ACK|A1|P|2.5\rMSA| CA |C1"), uint8(3), uint8(14), "not a path", "")
	f.Fuzz(func(t *testing.T, data []byte, pick, errPick uint8, location, text string) {
		orig := bytes.Clone(data)
		a, err := ParseACK(data)
		if !bytes.Equal(data, orig) {
			t.Fatal("input modified")
		}
		m, perr := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T", err)
			}
			if perr == nil && pe.Code != CodeNoMSA && pe.Code != CodeBadAckCode {
				t.Fatalf("Parse accepts the input, yet ParseACK fails with %v", err)
			}
		} else {
			if !a.Code.Valid() {
				t.Fatalf("ParseACK accepted code %q", a.Code)
			}
			if perr != nil {
				t.Fatalf("ParseACK accepted what Parse rejects: %v", perr)
			}
			msa, _ := m.Segment("MSA")
			if got := AckCode(strings.TrimSpace(msa.Field(1).String())); got != a.Code || a.ControlID != msa.Field(2).String() {
				t.Fatalf("ACK %+v, but MSA-1 %q and MSA-2 %q", a, got, msa.Field(2).String())
			}
		}

		// Acknowledge the input with whatever header it carries.
		h, d := PeekHeader(data)
		code := fuzzAckCodes[int(pick)%len(fuzzAckCodes)]
		e := AckError{Code: fuzzErrCodes[int(errPick)%len(fuzzErrCodes)], Location: location, Text: text}
		ack := BuildACK(h, d, code, ACKOptions{ControlID: "A1", Now: time.Unix(1700000000, 0), Text: text, Errors: []AckError{e}})
		back, err := ParseACK(ack)
		if err != nil {
			t.Fatalf("ParseACK of BuildACK for %+v: %v\n%q", h, err, ack)
		}
		if back.Code != code || back.ControlID != h.ControlID || back.Text != text {
			t.Fatalf("round trip of code %s, control id %q, text %q gave %+v\n%q", code, h.ControlID, text, back, ack)
		}
		if len(back.Errors) != 1 {
			t.Fatalf("1 error built, %d parsed: %+v\n%q", len(back.Errors), back.Errors, ack)
		}
		got := back.Errors[0]
		sent := parseLocation(location)
		ack2, _ := Parse(ack)
		ackD := ack2.Delimiters()
		if parseVersion(h.Version) >= 250 {
			// ERR-2 (ERL) location, ERR-3 code, ERR-4 severity, ERR-8 text.
			wantText := cmpOr(text, errText(e.Code))
			if got.Code != e.Code || got.Severity != "E" || got.Text != wantText {
				t.Fatalf("ERL error %+v, sent %+v\n%q", got, e, ack)
			}
			if loc := parseLocation(got.Location); loc != sent {
				t.Fatalf("location %q sent as %+v came back as %q (%+v)\n%q", location, sent, got.Location, loc, ack)
			}
			return
		}
		// ERR-1 (ELD): segment, sequence and field only; code and text are
		// subcomponents of ELD.4, lost when the sender declares no
		// subcomponent separator.
		if got.Code != e.Code || got.Severity != "E" {
			t.Fatalf("ELD error %+v, sent %+v\n%q", got, e, ack)
		}
		if wantText := cmpOr(text, errText(e.Code)); ackD.Subcomponent != 0 && got.Text != wantText {
			t.Fatalf("ELD error text %q, want %q\n%q", got.Text, wantText, ack)
		}
		want := path{seg: sent.seg, segIdx: sent.segIdx, field: sent.field}
		if want.field > 0 {
			want.rep = 1
		}
		if loc := parseLocation(got.Location); loc != want {
			t.Fatalf("location %q sent as %+v came back as %q (%+v), want %+v\n%q", location, sent, got.Location, loc, want, ack)
		}
	})
}
