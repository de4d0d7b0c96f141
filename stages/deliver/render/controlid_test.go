package render

import (
	"testing"

	"github.com/careflow-health/careflow/avro"
)

func TestControlID(t *testing.T) {
	ev := adtEvent("A01", "admit")
	a := ControlID(ev, "lab")
	if len(a) == 0 || len(a) > 20 {
		t.Fatalf("ControlID length %d, want 1..20 (HL7 ST)", len(a))
	}
	if again := ControlID(adtEvent("A01", "admit"), "lab"); again != a {
		t.Errorf("ControlID not stable: %q then %q", a, again)
	}
	// Only the event id and destination matter: a re-normalised event with
	// other content keeps its control id.
	changed := adtEvent("A08", "update")
	changed.Patient.FamilyName = "Byron"
	if got := ControlID(changed, "lab"); got != a {
		t.Errorf("ControlID changed with event content: %q vs %q", got, a)
	}
	if b := ControlID(ev, "portal"); b == a {
		t.Errorf("ControlID same for two destinations: %q", a)
	}
	other := &avro.ClinicalEvent{EventID: "01J0000000000000000000000B"}
	if b := ControlID(other, "lab"); b == a {
		t.Errorf("ControlID same for two events: %q", a)
	}
	// The separator keeps ("ab","c") apart from ("a","bc").
	if ControlID(&avro.ClinicalEvent{EventID: "ab"}, "c") == ControlID(&avro.ClinicalEvent{EventID: "a"}, "bc") {
		t.Error("ControlID ambiguous without separator")
	}
}
