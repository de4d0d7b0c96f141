package peer

import (
	"os/exec"
	"testing"
)

func TestRequireFindsAnInstalledProgram(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH")
	}
	if got := Require(t, "sh", "dash"); got != sh {
		t.Fatalf("Require(sh) = %q, want %q", got, sh)
	}
}

// Without the variable a missing peer skips; with it, it fails (the
// failing path is checked at its decision, since a failed subtest would
// fail this test too).
func TestMissingPeer(t *testing.T) {
	t.Setenv(RequireEnv, "")
	var inner *testing.T
	t.Run("skips", func(t *testing.T) {
		inner = t
		Require(t, "careflow-no-such-peer", "nothing")
		t.Error("Require returned for a missing program")
	})
	if !inner.Skipped() {
		t.Error("a missing peer did not skip without " + RequireEnv)
	}
	t.Setenv(RequireEnv, "1")
	if !requireSet() {
		t.Error("with " + RequireEnv + "=1 a missing peer would skip, not fail")
	}
}
