package engine_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/security.md names, for each promise, the tests that hold careflow
// to it, each followed by its package: "`TestA`, `TestB` (`stages/ingest`)".
// This fails when a named test is not in the package named (renamed,
// moved, deleted, never written), so the page cannot promise what nothing
// checks. A name given without a package must exist somewhere.
func TestSecurityDocNamesRealTests(t *testing.T) { docNamesRealTests(t, "docs/security.md", 30) }

// docs/workflows.md names the tests of each loop it draws; each must
// exist.
func TestWorkflowsDocNamesRealTests(t *testing.T) { docNamesRealTests(t, "docs/workflows.md", 20) }

func TestIdentityDocNamesRealTests(t *testing.T) { docNamesRealTests(t, "docs/identity.md", 8) }

func docNamesRealTests(t *testing.T, docPath string, atLeast int) {
	doc, err := os.ReadFile("../../" + docPath)
	if err != nil {
		t.Fatal(err)
	}
	token := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]+)`|\\(`([a-z0-9/]+)`\\)")
	named := map[string]string{} // test → package dir ("" when not said)
	for _, line := range strings.Split(string(doc), "\n") {
		var pending []string
		for _, m := range token.FindAllStringSubmatch(line, -1) {
			if m[1] != "" {
				pending = append(pending, m[1])
				named[m[1]] = ""
				continue
			}
			for _, name := range pending {
				named[name] = m[2]
			}
			pending = nil
		}
	}
	if len(named) < atLeast {
		t.Fatalf("%s names %d tests; the tables were not read", docPath, len(named))
	}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]+)\(`)
	definedIn := map[string][]string{} // test → package dirs that define it
	err = filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "../.." {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel("../..", filepath.Dir(path))
		for _, m := range decl.FindAllSubmatch(b, -1) {
			definedIn[string(m[1])] = append(definedIn[string(m[1])], filepath.ToSlash(dir))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, pkg := range named {
		dirs := definedIn[name]
		switch {
		case len(dirs) == 0:
			t.Errorf("%s names %s, which no test file defines", docPath, name)
		case pkg != "" && !contains(dirs, pkg):
			t.Errorf("%s places %s in %s; it is in %v", docPath, name, pkg, dirs)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The FHIR pages name tests that exist, where they say they are.
func TestFHIRDocsNameRealTests(t *testing.T) {
	docNamesRealTests(t, "docs/fhir.md", 10)
	docNamesRealTests(t, "docs/fhir-api.md", 8)
	docNamesRealTests(t, "docs/fhir-delivery.md", 4)
}
