package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/console"
)

func TestUsersCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console-users")
	add := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := cmdUsers(append([]string{"add", "--file", path}, args...), strings.NewReader(stdin), &out)
		return out.String(), err
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"a long enough password\n", []string{"--role", "admin"}, "--name NAME is required"},
		{"a long enough password\n", []string{"--name", "ann", "--role", "root"}, `role "root"`},
		{"short\n", []string{"--name", "ann"}, "at least 12 characters"},
	} {
		if _, err := add(tc.stdin, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("users add %v: %v, want %q", tc.args, err, tc.want)
		}
	}
	out, err := add("ann's long password\n", "--name", "ann", "--role", "operator")
	if err != nil || !strings.Contains(out, "ann (operator) is in "+path) {
		t.Fatalf("users add: %q, %v", out, err)
	}
	u, err := console.LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Check("ann", "ann's long password"); err != nil {
		t.Fatalf("the password from stdin does not log ann in: %v", err)
	}
	var list bytes.Buffer
	if err := cmdUsers([]string{"list", "--file", path}, nil, &list); err != nil || list.String() != "ann\toperator\n" {
		t.Fatalf("users list: %q, %v", list.String(), err)
	}
}

// The demo makes its console users once, with random passwords shown
// once, and keeps the file on later runs.
func TestDemoConsoleUsers(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	var out bytes.Buffer
	if err := demoConsoleUsers(&cfg, dir, &out); err != nil {
		t.Fatal(err)
	}
	if cfg.Console.UsersFile != filepath.Join(dir, "console-users") {
		t.Fatalf("users file %q", cfg.Console.UsersFile)
	}
	u, err := console.LoadUsers(cfg.Console.UsersFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range config.Roles {
		i := strings.Index(out.String(), role+" / ")
		if i < 0 {
			t.Fatalf("no password shown for %s:\n%s", role, out.String())
		}
		pw := strings.Fields(out.String()[i+len(role)+3:])[0]
		if usr, err := u.Check(role, pw); err != nil || usr.Role != role {
			t.Errorf("%s with the shown password: %+v, %v", role, usr, err)
		}
	}
	cfg2 := config.Defaults()
	out.Reset()
	if err := demoConsoleUsers(&cfg2, dir, &out); err != nil || strings.Contains(out.String(), " / ") {
		t.Fatalf("second run: %q, %v; want the file kept and no passwords", out.String(), err)
	}
}
