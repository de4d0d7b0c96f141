// The messages must show the whole pipeline, not a rejection nobody
// intended.

package messages

import (
	"bytes"
	"errors"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// load reads an example the way `careflow send` and mllp_send do: line
// feeds become the segment terminator CR.
func load(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\r"))
	return bytes.ReplaceAll(data, []byte("\n"), []byte("\r"))
}

// matches reports whether pattern ("ADT^A01", "ADT^*") covers typ^trig.
func matches(pattern, typ, trig string) bool {
	pt, pg, _ := strings.Cut(pattern, "^")
	return (pt == "*" || pt == typ) && (pg == "*" || pg == trig)
}

func TestExamplesPassDemoAcceptRules(t *testing.T) {
	cfg, err := config.Load("../demo/careflow.yaml")
	if err != nil {
		t.Fatalf("demo configuration: %v", err)
	}
	tests := []struct {
		file, iface, typ string
	}{
		{"adt_a01.hl7", "ehr", "ADT^A01"},
		{"adt_a08.hl7", "ehr", "ADT^A08"},
		{"adt_a40.hl7", "ehr", "ADT^A40"},
		{"orm_o01.hl7", "ehr", "ORM^O01"},
		{"oml_o21.hl7", "ehr", "OML^O21"},
		{"oru_r01.hl7", "lab-results", "ORU^R01"},
		{"adt_a04.hl7", "clinic", "ADT^A04"},
		// Latin-1 (MSH-18 8859/1): é and è as single bytes.
		{"adt_a08_latin1.hl7", "ehr", "ADT^A08"},
	}
	controlIDs := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := hl7v2.Parse(load(t, tc.file))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			h := m.Header()
			if got := h.MessageType + "^" + h.TriggerEvent; got != tc.typ {
				t.Fatalf("MSH-9 = %s, want %s", got, tc.typ)
			}
			if other, dup := controlIDs[h.ControlID]; dup || h.ControlID == "" {
				t.Fatalf("MSH-10 %q is empty or also used by %s: validate would drop one as a duplicate", h.ControlID, other)
			}
			controlIDs[h.ControlID] = tc.file

			in, ok := cfg.InboundByName(tc.iface)
			if !ok {
				t.Fatalf("demo has no inbound interface %s", tc.iface)
			}
			if !slices.ContainsFunc(in.Accept.MessageTypes, func(p string) bool { return matches(p, h.MessageType, h.TriggerEvent) }) {
				t.Errorf("%s does not accept %s", tc.iface, tc.typ)
			}
			if len(in.Accept.Versions) > 0 && !slices.Contains(in.Accept.Versions, h.Version) {
				t.Errorf("%s does not accept version %s", tc.iface, h.Version)
			}
			for pattern, paths := range in.Accept.Required {
				if !matches(pattern, h.MessageType, h.TriggerEvent) {
					continue
				}
				for _, p := range paths {
					present := false
					if strings.Contains(p, "-") {
						present = m.Get(p) != ""
					} else {
						_, present = m.Segment(p)
					}
					if !present {
						t.Errorf("%s requires %s for %s; the example lacks it", tc.iface, p, pattern)
					}
				}
			}
		})
	}
}

// The bad example must be rejected, with a parse error an analyst can act on.
func TestBadExampleFails(t *testing.T) {
	_, err := hl7v2.Parse(load(t, "bad_no_msh.hl7"))
	var pe *hl7v2.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse(bad_no_msh.hl7) = %v, want a *hl7v2.ParseError", err)
	}
}

// Every example file is covered by a test above.
func TestEveryExampleIsChecked(t *testing.T) {
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	known := []string{"adt_a01.hl7", "adt_a08.hl7", "adt_a40.hl7", "orm_o01.hl7", "oml_o21.hl7", "oru_r01.hl7", "bad_no_msh.hl7",
		"adt_a04.hl7", "adt_a08_latin1.hl7"}
	for _, f := range files {
		if path.Ext(f.Name()) == ".hl7" && !slices.Contains(known, f.Name()) {
			t.Errorf("%s is not checked by this test", f.Name())
		}
	}
}
