package main

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
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

// A file comment that sits right above `package` becomes part of the
// package's doc; this keeps `go doc` of every package opening with what the
// package is, written once: exactly one non-test file has a doc comment,
// and it starts "Package NAME" (or "Command").
func TestEveryPackageOpensWithItsOwnDoc(t *testing.T) {
	for _, line := range goList(t, "{{.ImportPath}}|{{.Name}}|{{.Dir}}|{{join .GoFiles \",\"}}") {
		f := strings.Split(line, "|")
		path, name, dir, files := f[0], f[1], f[2], strings.Split(f[3], ",")
		want := "Package " + name + " "
		if name == "main" {
			want = "Command "
		}
		var docs []string
		for _, file := range files {
			parsed, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, file), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Doc == nil {
				continue
			}
			docs = append(docs, file)
			text := parsed.Doc.Text()
			if !strings.HasPrefix(text, want) {
				t.Errorf("%s/%s: its comment above `package` becomes go doc %s, and starts %q, not %q",
					path, file, path, firstLine(text), want)
			}
			if strings.Contains(text, "This file") {
				t.Errorf("%s/%s: the package doc says \"This file\": what a file holds belongs in a comment apart from `package`", path, file)
			}
		}
		if len(docs) != 1 {
			t.Errorf("go doc %s is made of %d files' comments (%v), want exactly one", path, len(docs), docs)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// stageRoots are the stages; each may import its own subpackages and the
// frame they share (stages, stages/identity, stages/conformance,
// stages/lifecycle, stages/audit), never another
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
	// Tests count too: a test that needs two stages belongs above them, in
	// internal/engine.
	for _, line := range goList(t, "{{.ImportPath}}|{{join .Imports \" \"}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}") {
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
