package console

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseUsersRefusesWhatItCannotUse(t *testing.T) {
	good, err := UserLine("ann", "operator", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"two fields", "ann operator\n", `users line 1: want "name role bcrypt-hash", got 2 fields`},
		{"unknown role", "# users\nann clinician " + strings.Fields(good)[2] + "\n", `users line 2: user ann: unknown role "clinician"`},
		{"plain password", "ann operator secret\n", "users line 1: user ann: the third field is not a bcrypt hash"},
		{"twice", good + "\n" + good + "\n", "users line 2: user ann is listed twice"},
		{"empty", "# nobody\n\n", "users lists no users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseUsers([]byte(tc.file), "users")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestUsersCheckAndSetUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if _, err := LoadUsers(path); err == nil || !strings.Contains(err.Error(), "careflow users add --file "+path) {
		t.Fatalf("a missing file: %v, want how to make one", err)
	}
	for _, tc := range []struct{ name, role, password, want string }{
		{"a b", "viewer", "a long enough password", "want one word"},
		{"ann", "superuser", "a long enough password", `role "superuser"`},
		{"ann", "viewer", "short", "at least 12 characters"},
	} {
		if err := SetUser(path, tc.name, tc.role, tc.password); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetUser(%q, %q): %v, want %q", tc.name, tc.role, err, tc.want)
		}
	}
	if err := SetUser(path, "ann", "viewer", "first password here"); err != nil {
		t.Fatal(err)
	}
	if err := SetUser(path, "bob", "admin", "bob's password here"); err != nil {
		t.Fatal(err)
	}
	// Setting ann again replaces her line: new role, new password.
	if err := SetUser(path, "ann", "operator", "second password here"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file mode %v (%v), want 0600", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "password") {
		t.Fatal("the users file holds a password")
	}
	u, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.List(); len(got) != 2 || got[0].Name != "ann" || got[0].Role != "operator" || got[1].Role != "admin" {
		t.Fatalf("users %+v", got)
	}
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{
		{"ann", "second password here", true},
		{"ann", "first password here", false},
		{"bob", "second password here", false},
		{"carol", "second password here", false},
		{"", "", false},
	} {
		usr, err := u.Check(tc.name, tc.password)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrBadLogin)) || (tc.ok && usr.Role != "operator") {
			t.Errorf("Check(%q, %q) = %+v, %v", tc.name, tc.password, usr, err)
		}
	}
}

func TestSetUserTightensTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte("# old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SetUser(path, "ann", "viewer", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v after SetUser on a 0644 file, want 0600", fi.Mode().Perm())
	}
	for _, name := range []string{"ann\vx", "ann\u00a0x", "a#b"} {
		if err := SetUser(path, name, "viewer", "a long enough password"); err == nil {
			t.Errorf("SetUser(%q) was accepted", name)
		}
	}
	if u, err := LoadUsers(path); err != nil || len(u.List()) != 1 {
		t.Fatalf("users after refusals: %v", err)
	}
}
