package normalise

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// latin1Admit is adt_a01_v251.hl7 as an 8859/1 sender writes it: MSH-18
// 8859/1 and a patient whose names hold ü, é and ë as single bytes.
func latin1Admit(t *testing.T) []byte {
	t.Helper()
	p := load(t, "adt_a01_v251.hl7")
	p = bytes.Replace(p, []byte("|AL|NE\r"), []byte("|AL|NE||8859/1\r"), 1)
	p = bytes.Replace(p, []byte("van der Berg&van der&Berg^Anna^Maria"), []byte("M\xfcller^Ren\xe9e^Zo\xeb"), 1)
	if utf8.Valid(p) {
		t.Fatal("fixture is UTF-8; the replacements did not apply")
	}
	return p
}

// TestProcessLatin1 is the defect this stage fixes: an 8859/1 message
// becomes an event holding UTF-8, which encodes as JSON without U+FFFD
// (the renderers check their own output in stages/deliver/render).
func TestProcessLatin1(t *testing.T) {
	for _, charset := range []string{
		"8859/1", // as ingest resolved it
		"",       // a record from before ingest recorded the charset: MSH-18 decides
	} {
		t.Run("charset="+charset, func(t *testing.T) {
			st, serde := newStage(t)
			raw := rawFor(latin1Admit(t))
			raw.Charset = charset
			out, err := st.Process(context.Background(), envelopeFor(t, serde, raw))
			if err != nil {
				t.Fatal(err)
			}
			var ev avro.ClinicalEvent
			if err := serde.Decode(out[0].Value, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Patient.FamilyName != "Müller" || !reflect.DeepEqual(ev.Patient.GivenNames, []string{"Renée", "Zoë"}) {
				t.Errorf("names = %q %q, want Müller [Renée Zoë]", ev.Patient.FamilyName, ev.Patient.GivenNames)
			}
			if field := avro.InvalidUTF8(ev); field != "" {
				t.Errorf("%s is not UTF-8", field)
			}
			doc, err := json.Marshal(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(doc) || !bytes.Contains(doc, []byte(`"Renée"`)) || !bytes.Contains(doc, []byte(`"Müller"`)) ||
				bytes.Contains(doc, []byte(`\ufffd`)) || bytes.Contains(doc, []byte("\ufffd")) {
				t.Errorf("JSON does not carry the names as UTF-8:\n%s", doc)
			}
		})
	}
}

func TestProcessCharsetFailures(t *testing.T) {
	utf8Payload := load(t, "adt_a01_v251.hl7")
	tests := []struct {
		name     string
		payload  []byte
		charset  string
		code     string
		location string
	}{
		{"Latin-1 bytes recorded as UTF-8", latin1Admit(t), "UNICODE UTF-8", hl7v2.CodeBadCharset, "PID-5"},
		{"unknown recorded charset", utf8Payload, "EBCDIC-XYZ", hl7v2.CodeUnknownCharset, ""},
		{"hex escape spelling Latin-1", bytes.Replace(utf8Payload, []byte("^Anna^"), []byte(`^Ren\XE9\e^`), 1), "", hl7v2.CodeBadCharset, "PID-5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, serde := newStage(t)
			raw := rawFor(tc.payload)
			raw.Charset = tc.charset
			out, err := st.Process(context.Background(), envelopeFor(t, serde, raw))
			var se *stages.Error
			if !errors.As(err, &se) || se.Kind != stages.KindPermanent || se.Code != tc.code || se.Location != tc.location {
				t.Fatalf("err = %v, want permanent %s at %q", err, tc.code, tc.location)
			}
			if len(out) != 1 || out[0].Topic != topics.Outcomes {
				t.Fatalf("got %d outputs, want the invalid outcome", len(out))
			}
			var o avro.DeliveryOutcome
			if err := serde.Decode(out[0].Value, &o); err != nil {
				t.Fatal(err)
			}
			if o.ErrorCode != tc.code || o.ErrorLocation != tc.location || strings.Contains(o.ErrorText, "Ren") {
				t.Errorf("outcome %s at %q: %s", o.ErrorCode, o.ErrorLocation, o.ErrorText)
			}
		})
	}
}
