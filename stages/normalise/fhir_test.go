package normalise

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/careflow-health/careflow/connectors/fhir"
)

// Every event type connectors/fhir's Canonical gives is the one this
// stage gives the HL7 message type and trigger it names: the two maps of
// event types (connectors cannot import stages) stay one. The
// specification's examples are the FHIR input.
func TestFHIREventTypesAreNormalises(t *testing.T) {
	files, err := filepath.Glob("../../connectors/fhir/testdata/spec/valid/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples (%v)", err)
	}
	var all []fhir.Resource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := fhir.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all = append(all, res)
	}
	mapped := 0
	for i, res := range all {
		f := files[i]
		// Every other example is at hand as ingest would resolve it: the
		// patient an Observation names, its ServiceRequest.
		ev, err := fhir.Canonical(fhir.Write{Interface: "apps", Method: fhir.MethodCreate, Resource: res, Related: all}, nil)
		if err != nil {
			continue // an example Canonical cannot map says why itself (TestCanonicalSpecExamples)
		}
		mapped++
		if got := EventTypeOf(ev.MessageType, ev.TriggerEvent); got != ev.EventType {
			t.Errorf("%s: Canonical says %s^%s is %q; normalise says %q", filepath.Base(f), ev.MessageType, ev.TriggerEvent, ev.EventType, got)
		}
	}
	if mapped < 10 {
		t.Errorf("only %d examples mapped", mapped)
	}
}
