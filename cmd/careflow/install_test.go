package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const modulePath = "github.com/careflow-health/careflow"

// repoRoot is the module's directory, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}

// goEnv is the environment of a go command that must not reach the
// network: modules come from the module cache (filled by building this
// repository) or from proxy, when given.
func goEnv(proxy string) []string {
	env := append([]string{}, os.Environ()...)
	env = append(env, "GOFLAGS=-mod=mod", "GOSUMDB=off", "GOTOOLCHAIN=local")
	if proxy != "" {
		env = append(env, "GOPROXY="+proxy)
	} else {
		env = append(env, "GOPROXY=off")
	}
	return env
}

// A program in another module imports careflow's standards packages
// (connectors/hl7v2, connectors/mllp): the module path resolves, and the
// packages are an API someone else can build on.
func TestAnotherModuleImportsTheConnectors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program in another module")
	}
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/lab\n\ngo 1.26\n\nrequire "+modulePath+" v0.0.0\n\nreplace "+modulePath+" => "+repoRoot(t)+"\n")
	write("main.go", `package main

import (
	"fmt"

	"`+modulePath+`/connectors/hl7v2"
	_ "`+modulePath+`/connectors/mllp"
)

func main() {
	m, err := hl7v2.Parse([]byte("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|C1|P|2.5.1\rPID|1||123^^^HOSP^MR"))
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Header().MessageType, m.Get("PID-3.1"))
}
`)
	run := exec.Command("go", "run", ".")
	run.Dir, run.Env = dir, goEnv("")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("go run in another module: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "ORU 123" {
		t.Fatalf("the program printed %q, want \"ORU 123\"", got)
	}
}

// go install github.com/careflow-health/careflow/cmd/careflow@VERSION works
// from a module proxy: this test serves the repository as a version on a
// file:// proxy (the layout every Go module proxy has) and installs the
// binary from it, as README tells a user to do.
func TestGoInstallFromAModuleProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("installs careflow from a local module proxy")
	}
	const version = "v0.9.0"
	root := repoRoot(t)
	proxy := t.TempDir()
	at := filepath.Join(proxy, filepath.FromSlash(modulePath), "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("the module's files are listed with git: %v", err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(modulePath + "@" + version + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(map[string]any{"Version": version, "Time": time.Now().UTC().Format(time.RFC3339)})
	for name, data := range map[string][]byte{
		"list": []byte(version + "\n"), version + ".info": info, version + ".mod": mod, version + ".zip": buf.Bytes(),
	} {
		if err := os.WriteFile(filepath.Join(at, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Every other module comes from the module cache; nothing else is
	// asked of the network.
	bin := t.TempDir()
	install := exec.Command("go", "install", modulePath+"/cmd/careflow@"+version)
	install.Dir = t.TempDir()
	install.Env = append(goEnv("file://"+proxy+",off"), "GOBIN="+bin, "GONOSUMDB="+modulePath)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install %s/cmd/careflow@%s: %v\n%s", modulePath, version, err, out)
	}
	out, err := exec.Command(filepath.Join(bin, "careflow"), "help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "careflow run") {
		t.Fatalf("the installed careflow: %v\n%s", err, out)
	}
}
