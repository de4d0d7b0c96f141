package console

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/careflow-health/careflow/config"
)

// User is one console login.
type User struct {
	Name string
	Role string
	hash []byte // bcrypt
}

// Users are the console's logins, read from the users file: one per line,
// "name role bcrypt-hash", # starts a comment. The file holds no password,
// only bcrypt hashes, so it may be kept with the configuration.
type Users struct {
	byName map[string]User
	// dummy is compared against when the name is unknown, so that a wrong
	// name costs the same time as a wrong password.
	dummy []byte
}

// ErrBadLogin is a wrong name or password; which one is not said.
var ErrBadLogin = errors.New("console: wrong user name or password")

// LoadUsers reads the users file at path.
func LoadUsers(path string) (*Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("console: users file: %w (make one with careflow users add --file %s --name NAME --role ROLE)", err, path)
	}
	return ParseUsers(b, path)
}

// ParseUsers parses a users file's bytes; name is used in errors.
func ParseUsers(b []byte, name string) (*Users, error) {
	u := &Users{byName: map[string]User{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("console: %s line %d: want \"name role bcrypt-hash\", got %d fields", name, n, len(f))
		}
		if !slices.Contains(config.Roles, f[1]) {
			return nil, fmt.Errorf("console: %s line %d: user %s: unknown role %q (want viewer, operator or admin)", name, n, f[0], f[1])
		}
		if _, err := bcrypt.Cost([]byte(f[2])); err != nil {
			return nil, fmt.Errorf("console: %s line %d: user %s: the third field is not a bcrypt hash: %w", name, n, f[0], err)
		}
		if _, dup := u.byName[f[0]]; dup {
			return nil, fmt.Errorf("console: %s line %d: user %s is listed twice", name, n, f[0])
		}
		u.byName[f[0]] = User{Name: f[0], Role: f[1], hash: []byte(f[2])}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("console: %s: %w", name, err)
	}
	if len(u.byName) == 0 {
		return nil, fmt.Errorf("console: %s lists no users", name)
	}
	u.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)
	return u, nil
}

// Check returns the user whose name and password these are, or ErrBadLogin.
func (u *Users) Check(name, password string) (User, error) {
	usr, ok := u.byName[name]
	hash := usr.hash
	if !ok {
		hash = u.dummy
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !ok || err != nil {
		return User{}, ErrBadLogin
	}
	return usr, nil
}

// Known reports whether name is a user.
func (u *Users) Known(name string) bool {
	_, ok := u.byName[name]
	return ok
}

// List returns the users in name order.
func (u *Users) List() []User {
	out := make([]User, 0, len(u.byName))
	for _, x := range u.byName {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// UserLine is the users-file line for name with role and password.
func UserLine(name, role, password string) (string, error) {
	if name == "" || strings.ContainsRune(name, '#') || strings.IndexFunc(name, unicode.IsSpace) >= 0 || !utf8.ValidString(name) {
		return "", fmt.Errorf("console: user name %q: want one word without # or spaces", name)
	}
	if !slices.Contains(config.Roles, role) {
		return "", fmt.Errorf("console: role %q: want viewer, operator or admin", role)
	}
	if len(password) < 12 {
		return "", errors.New("console: a password needs at least 12 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("console: hash password: %w", err)
	}
	return name + " " + role + " " + string(h), nil
}

// SetUser writes name's line into the users file at path, replacing the
// user's old line or adding one, and creating the file (mode 0600) when
// missing.
func SetUser(path, name, role, password string) error {
	line, err := UserLine(name, role, password)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("console: users file: %w", err)
	}
	var out []string
	replaced := false
	for l := range strings.Lines(string(old)) {
		l = strings.TrimRight(l, "\r\n")
		if f := strings.Fields(l); len(f) > 0 && f[0] == name && !strings.HasPrefix(l, "#") {
			l, replaced = line, true
		}
		out = append(out, l)
	}
	if !replaced {
		if len(out) == 0 {
			out = append(out, "# careflow console users: name role bcrypt-hash (careflow users add)")
		}
		out = append(out, line)
	}
	// A new file beside the old, renamed over it: a crash leaves the old
	// file or the new one, never half of one the engine cannot start with;
	// and the file is 0600 whatever mode the old one had.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".console-users-*")
	if err != nil {
		return fmt.Errorf("console: users file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.WriteString(strings.Join(out, "\n") + "\n")
		if err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("console: users file %s: %w", path, err)
	}
	return nil
}

// sameString compares secrets in constant time.
func sameString(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
