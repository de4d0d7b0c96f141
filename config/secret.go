// This file holds Secret: a value the configuration file points at but never
// contains, so that configuration files can be shared, reviewed and kept in
// version control without leaking credentials.

package config

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secret is a credential written in the file as {env: NAME} (an environment
// variable) or {file: PATH} (a file's contents without its trailing newline,
// PATH relative to the configuration file). Load resolves it; Value returns
// it. Printing or logging a Secret shows where it came from, never the
// value.
type Secret struct {
	Env   string `yaml:"env"`
	File  string `yaml:"file"`
	value string
}

// Value returns the resolved secret.
func (s Secret) Value() string { return s.value }

// String names the secret's source, never its value.
func (s Secret) String() string {
	if s.Env != "" {
		return "env:" + s.Env
	}
	return "file:" + s.File
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return "config.Secret{" + s.String() + "}" }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// decodeSecret reads {env: NAME} or {file: PATH} at n and resolves it. It
// never puts the value, or what was written in place of the reference, in a
// problem: a person who typed the credential itself must not see it echoed
// into logs.
func (d *decoder) decodeSecret(path string, n *yaml.Node) (Secret, bool) {
	const want = "a secret is given as {env: NAME} or {file: PATH}, never written in the file"
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, want)
		return Secret{}, false
	}
	var s Secret
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if v.Kind != yaml.ScalarNode || v.Value == "" {
			d.problem(v, path+"."+k.Value, "want a non-empty name")
			return Secret{}, false
		}
		switch k.Value {
		case "env":
			s.Env = v.Value
		case "file":
			s.File = v.Value
		default:
			d.problem(k, path+"."+k.Value, "unknown key"+suggest(k.Value, []string{"env", "file"})+"; "+want)
			return Secret{}, false
		}
	}
	switch {
	case s.Env == "" && s.File == "":
		d.problem(n, path, want)
		return Secret{}, false
	case s.Env != "" && s.File != "":
		d.problem(n, path, "give env or file, not both")
		return Secret{}, false
	case s.Env != "":
		v, ok := d.opts.lookupEnv(s.Env)
		if !ok || v == "" {
			d.problem(n, path, fmt.Sprintf("environment variable %s is not set", s.Env))
			return Secret{}, false
		}
		s.value = v
	default:
		p := s.File
		if !filepath.IsAbs(p) {
			p = filepath.Join(d.dir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			d.problem(n, path, fmt.Sprintf("read secret file: %v", err))
			return Secret{}, false
		}
		s.value = strings.TrimRight(string(b), "\r\n")
		if s.value == "" {
			d.problem(n, path, fmt.Sprintf("secret file %s is empty", p))
			return Secret{}, false
		}
	}
	return s, true
}
