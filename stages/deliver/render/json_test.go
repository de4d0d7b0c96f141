package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"github.com/careflow-health/careflow/avro"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestJSONGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		ev     func() []byte
	}{
		{"admit", "admit.json", func() []byte { return mustJSON(t, adtEvent("A01", "admit")) }},
		{"merge without encounter", "merge.json", func() []byte { return mustJSON(t, mergeEvent()) }},
		{"result", "result.json", func() []byte { return mustJSON(t, resultEvent()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.ev()
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatalf("output is not JSON: %v", err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("JSON differs from %s:\ngot:\n%s\nwant:\n%s", path, pretty.Bytes(), want)
			}
		})
	}
}

// TestJSONShape checks the contract properties a golden file alone would
// not make obvious: lists are never null, encounter is null when absent.
func TestJSONShape(t *testing.T) {
	ev := mergeEvent()
	ev.Patient.GivenNames = nil
	ev.Patient.Addresses = nil
	var doc map[string]any
	if err := json.Unmarshal(mustJSON(t, ev), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["encounter"] != nil {
		t.Errorf("encounter = %v, want null", doc["encounter"])
	}
	for _, k := range []string{"orders", "observations"} {
		if _, ok := doc[k].([]any); !ok {
			t.Errorf("%s = %#v, want a list", k, doc[k])
		}
	}
	p := doc["patient"].(map[string]any)
	for _, k := range []string{"identifiers", "given_names", "addresses", "prior_identifiers"} {
		if _, ok := p[k].([]any); !ok {
			t.Errorf("patient.%s = %#v, want a list", k, p[k])
		}
	}
	if doc["control_id"] != "CID" {
		t.Errorf("control_id = %v, want CID", doc["control_id"])
	}
}

func mustJSON(t *testing.T, ev *avro.ClinicalEvent) []byte {
	t.Helper()
	b, err := JSON(ev, "CID")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
