package fhir

import (
	"os"
	"path/filepath"
	"testing"
)

// The FHIR examples the README tells people to post decode, and their
// Bundles read as transactions.
func TestExamplesDecode(t *testing.T) {
	files, err := filepath.Glob("../../examples/fhir/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Decode(b)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if r.Type() == "Bundle" {
			if _, err := Entries(r); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}
