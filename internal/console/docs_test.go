package console

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/console.md links a screenshot of every page and names the tests
// that show what it says: each must exist.
func TestConsoleDocsLinkRealFiles(t *testing.T) {
	b, err := os.ReadFile("../../docs/console.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	shots := regexp.MustCompile(`\]\((console/[0-9]{2}-[a-z]+\.png)\)`).FindAllStringSubmatch(doc, -1)
	if len(shots) < len(pageNames)-1 { // every page but the error page
		t.Errorf("docs/console.md links %d screenshots, want one per page (%d)", len(shots), len(pageNames)-1)
	}
	for _, m := range shots {
		if fi, err := os.Stat(filepath.Join("../../docs", m[1])); err != nil || fi.Size() == 0 {
			t.Errorf("docs/console.md links %s: %v", m[1], err)
		}
	}
	for test, file := range map[string]string{
		"TestConsoleInBrowser":      "../engine/console_test.go",
		"TestDLQReplayDeliversOnce": "../engine/dlq_replay_test.go",
	} {
		src, err := os.ReadFile(file)
		if !strings.Contains(doc, test) || err != nil || !strings.Contains(string(src), "func "+test+"(") {
			t.Errorf("docs/console.md and %s disagree about %s (%v)", file, test, err)
		}
	}
}
