// Package peer finds the independent programs careflow's tests talk to
// (kcat, mllp_send, clickhouse-server, promtool; chromium through
// internal/browser) and starts the FHIR ones
// (FHIRServer, FHIRClient: node scripts in fhirserver/). A developer's
// machine may lack them, so a test skips; CI must not pass by skipping, so
// with CAREFLOW_REQUIRE_PEERS set (as .ci/run sets it) a missing peer fails.
package peer

import (
	"os"
	"os/exec"
	"testing"
)

// RequireEnv makes a missing peer a failure instead of a skip.
const RequireEnv = "CAREFLOW_REQUIRE_PEERS"

// Missing ends t for want of a peer: a skip, or a failure under
// CAREFLOW_REQUIRE_PEERS. what names it and how to install it.
func Missing(t testing.TB, what string) {
	t.Helper()
	if requireSet() {
		t.Fatalf("%s, and %s is set", what, RequireEnv)
	}
	t.Skip(what)
}

// Require returns the path of the program name, or ends t with Missing;
// pkg is the Debian package that installs it.
func Require(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" is not installed (apt-get install -y "+pkg+")")
	}
	return path
}

func requireSet() bool { return os.Getenv(RequireEnv) != "" }
