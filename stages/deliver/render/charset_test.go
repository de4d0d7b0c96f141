package render

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// accented is the admit event with names and a note no 7-bit set holds.
func accented() *avro.ClinicalEvent {
	ev := adtEvent("A01", "admit")
	ev.Patient.FamilyName = "Müller"
	ev.Patient.GivenNames = []string{"Renée", "Zoë"}
	ev.Observations = []avro.Observation{{SetID: "1", OrderIndex: -1, ValueType: "ST", Code: "FEE", Value: "12 €"}}
	return ev
}

func TestHL7Charset(t *testing.T) {
	tests := []struct {
		name, charset, version string
		msh18                  string
		raw                    []string // byte strings the message must contain
	}{
		{"default UTF-8", "", "2.5.1", "UNICODE UTF-8", []string{"M\xc3\xbcller^Ren\xc3\xa9e^Zo\xc3\xab", "12 \xe2\x82\xac"}},
		{"UTF-8 by IANA name", "utf-8", "2.5.1", "UNICODE UTF-8", []string{"Ren\xc3\xa9e"}},
		{"Windows-1252", "WINDOWS-1252", "2.5.1", "WINDOWS-1252", []string{"M\xfcller^Ren\xe9e^Zo\xeb", "12 \x80"}},
		{"8859/15", "latin9", "2.4", "8859/15", []string{"Ren\xe9e", "12 \xa4"}},
		{"2.3 has MSH-18", "cp1252", "2.3", "WINDOWS-1252", []string{"Ren\xe9e"}},
		{"2.2 has no MSH-18 but is still encoded", "cp1252", "2.2", "", []string{"Ren\xe9e", "12 \x80"}},
		{"2.1 likewise", "", "2.1", "", []string{"Ren\xc3\xa9e"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := testTarget(tc.version)
			tgt.Charset = tc.charset
			out, err := HL7(accented(), tgt, "CTRL0001", renderTime)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.raw {
				if !bytes.Contains(out, []byte(want)) {
					t.Errorf("message lacks %q:\n%q", want, out)
				}
			}
			h, _ := hl7v2.PeekHeader(out)
			if h.Charset != tc.msh18 {
				t.Errorf("MSH-18 = %q, want %q", h.Charset, tc.msh18)
			}
			// The receiver's view: decode as declared (2.1/2.2: as
			// configured) and read the names back.
			text, _, err := hl7v2.DecodeMessage(out, "", tgt.Charset)
			if err != nil {
				t.Fatal(err)
			}
			m, err := hl7v2.Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			if m.Get("PID-5.1") != "Müller" || m.Get("PID-5.2") != "Renée" || m.Get("OBX-5") != "12 €" {
				t.Errorf("read back PID-5 %q OBX-5 %q", m.Get("PID-5"), m.Get("OBX-5"))
			}
		})
	}
}

func TestHL7CharsetErrors(t *testing.T) {
	tests := []struct {
		name, charset string
		ev            func() *avro.ClinicalEvent
		code, loc     string
	}{
		{"é in ASCII", "ASCII", accented, hl7v2.CodeUnrepresentable, "PID-5"},
		{"€ in 8859/1", "8859/1", func() *avro.ClinicalEvent {
			ev := accented()
			ev.Patient.FamilyName, ev.Patient.GivenNames = "Muller", []string{"Renée"}
			return ev
		}, hl7v2.CodeUnrepresentable, "OBX-5"},
		{"Ł in Windows-1252, second observation", "WINDOWS-1252", func() *avro.ClinicalEvent {
			ev := accented()
			ev.Observations = append(ev.Observations, avro.Observation{SetID: "2", OrderIndex: -1, ValueType: "ST", Code: "CITY", Value: "Łódź"})
			return ev
		}, hl7v2.CodeUnrepresentable, "OBX[2]-5"},
		{"event string that is not UTF-8", "", func() *avro.ClinicalEvent {
			ev := adtEvent("A01", "admit")
			ev.Patient.FamilyName = "Ren\xe9e" // written before normalise decoded MSH-18
			return ev
		}, hl7v2.CodeBadCharset, "PID-5"},
		{"unknown charset", "EBCDIC", accented, hl7v2.CodeUnknownCharset, ""},
		{"read-only charset", "ISO IR87", accented, hl7v2.CodeUnknownCharset, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := testTarget("2.5.1")
			tgt.Charset = tc.charset
			out, err := HL7(tc.ev(), tgt, "CTRL0001", renderTime)
			var pe *hl7v2.ParseError
			if !errors.As(err, &pe) || pe.Code != tc.code || pe.Location != tc.loc {
				t.Fatalf("err = %v (output %q), want %s at %q", err, out, tc.code, tc.loc)
			}
			for _, secret := range []string{"Renée", "Ren", "Łódź", "Müller"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes patient text", err)
				}
			}
		})
	}
}

func TestJSONIsUTF8(t *testing.T) {
	doc := mustJSON(t, accented())
	for _, want := range []string{`"Müller"`, `"Renée"`, `"12 €"`} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("JSON lacks %s as UTF-8:\n%s", want, doc)
		}
	}
	// A real U+FFFD and the six characters \ufffd are text, not errors.
	ev := accented()
	ev.Patient.GivenNames = []string{"\ufffd", `\ufffd`}
	if _, err := JSON(ev, "CID"); err != nil {
		t.Errorf("JSON refused valid text: %v", err)
	}

	ev = accented()
	ev.Observations[0].Value = "Ren\xe9e"
	_, err := JSON(ev, "CID")
	if err == nil || !strings.Contains(err.Error(), "observations[0].value") {
		t.Fatalf("err = %v, want one naming observations[0].value", err)
	}
	if strings.Contains(err.Error(), "Ren") {
		t.Errorf("error %q quotes the value", err)
	}
	ev = accented()
	ev.Encounter.Room = "\xff"
	if _, err := JSON(ev, "CID"); err == nil || !strings.Contains(err.Error(), "encounter.room") {
		t.Errorf("err = %v, want one naming encounter.room", err)
	}
}

func BenchmarkRenderHL7Latin1(b *testing.B) {
	ev := accented()
	tgt := testTarget("2.5.1")
	tgt.Charset = "8859/15"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HL7(ev, tgt, "C1", renderTime); err != nil {
			b.Fatal(err)
		}
	}
}
