package main

import (
	"os/exec"
	"strings"
	"testing"
)

// goList runs `go list` with format over every package of the module.
func goList(t *testing.T, format string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", format, "./...")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// A file comment that sits right above `package` becomes the package's doc;
// this keeps `go doc` of every package opening with what the package is.
func TestEveryPackageOpensWithItsOwnDoc(t *testing.T) {
	for _, line := range goList(t, "{{.ImportPath}}|{{.Name}}|{{.Doc}}") {
		path, rest, _ := strings.Cut(line, "|")
		name, doc, _ := strings.Cut(rest, "|")
		want := "Package " + name + " "
		if name == "main" {
			want = "Command "
		}
		if !strings.HasPrefix(doc, want) {
			t.Errorf("go doc %s opens with %q, want a doc starting %q", path, doc, want)
		}
	}
}

// stageRoots are the stages; each may import its own subpackages and the
// frame they share (stages, stages/identity, stages/audit), never another
// stage, so that a stage can be read, tested and scaled on its own.
var stageRoots = []string{"ingest", "validate", "normalise", "route", "deliver", "sink"}

func TestNoStageImportsAnotherStage(t *testing.T) {
	const prefix = modulePath + "/stages/"
	stageOf := func(path string) string {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok {
			return ""
		}
		root, _, _ := strings.Cut(rest, "/")
		for _, s := range stageRoots {
			if s == root {
				return s
			}
		}
		return ""
	}
	checked := 0
	for _, line := range goList(t, "{{.ImportPath}}|{{join .Imports \" \"}}") {
		path, imports, _ := strings.Cut(line, "|")
		from := stageOf(path)
		if from == "" {
			continue
		}
		checked++
		for _, imp := range strings.Fields(imports) {
			if to := stageOf(imp); to != "" && to != from {
				t.Errorf("stage %s (%s) imports stage %s (%s)", from, path, to, imp)
			}
		}
	}
	if checked < len(stageRoots) {
		t.Fatalf("found %d stage packages, want at least %d: has the layout moved?", checked, len(stageRoots))
	}
}
