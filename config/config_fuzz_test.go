// This file fuzzes Parse, which reads the configuration file interface
// analysts edit.

package config

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fuzzSecret is the value of every environment variable FuzzConfig's
// environment holds but the *_SHA ones; no problem may show it.
const fuzzSecret = "fuzz-s3cret-value"

// fuzzEnv is FuzzConfig's environment: NAME_SHA is a SHA-256 in hex,
// UNSET is not set, anything else is fuzzSecret.
func fuzzEnv(name string) (string, bool) {
	switch {
	case name == "UNSET":
		return "", false
	case strings.HasSuffix(name, "_SHA"):
		return strings.Repeat("9a", 32), true
	}
	return fuzzSecret, true
}

// fuzzExprCheck stands in for the route compiler: it rejects any
// condition holding "bad", with a multi-line error as CEL's are.
func fuzzExprCheck(expr string) error {
	if strings.Contains(expr, "bad") {
		return errors.New("ERROR: <input>:1:1: undeclared reference to 'bad'\n | bad\n | ^")
	}
	return nil
}

// configSeeds returns the demo configuration and every YAML snippet the
// package's tests write (string literals with a key on a line of their
// own), so that the fuzzer starts from real files and real mistakes.
func configSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	demo, err := os.ReadFile("../examples/demo/careflow.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	out := [][]byte{demo}
	files, _ := filepath.Glob("*_test.go")
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			continue // being edited: its snippets are only seeds
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && strings.Contains(s, ":") && strings.Contains(s, "\n") {
				out = append(out, []byte(s))
			}
			return true
		})
	}
	return out
}

// FuzzConfig: Parse never panics; its error is always Problems, never
// empty, each problem in the file parsed and with a key or a line, none
// showing a secret's value; a configuration it accepts is accepted again
// (the same Config, warnings included) and, defaults applied and
// references resolved, passes validation once more.
// A syntax error on line 1 ("a: b: c", for which yaml.v3 names no line)
// once had neither line nor key.
func FuzzConfig(f *testing.F) {
	for _, s := range configSeeds(f) {
		f.Add(s)
	}
	base := "inbound: [{name: ehr, listen: 127.0.0.1:2575}]\n"
	f.Add([]byte(base))
	f.Add([]byte(base + "admin:\n  tokens: [{name: ops, sha256: {env: OPS_SHA}}]\n"))
	f.Add([]byte(base + "destinations:\n  - name: portal\n    transport: http\n    url: https://portal.example/events\n" +
		"    headers: {Authorization: {env: PORTAL_TOKEN}, X-Missing: {env: UNSET}}\n" +
		"routes: [{name: r, destination: portal, when: \"event.message_type == 'ADT'\"}]\n"))
	f.Add([]byte(base + "routes: [{name: r, destination: nowhere, when: bad}]\n---\nsecond: doc\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("a: b: c\ninbound: []\n")) // a syntax error on line 1
	const name = "fuzz/careflow.yaml"
	opts := []Option{WithLookupEnv(fuzzEnv), WithExprCheck(fuzzExprCheck)}
	f.Fuzz(func(t *testing.T, data []byte) {
		if reachesDevices(data) {
			return
		}
		orig := bytes.Clone(data)
		c, err := Parse(name, data, opts...)
		if !bytes.Equal(data, orig) {
			t.Fatal("input modified")
		}
		if err != nil {
			ps, ok := err.(Problems)
			if !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if len(ps) == 0 {
				t.Fatal("empty Problems")
			}
			for _, p := range ps {
				if p.Pos.File != name || p.Key == "" && p.Pos.Line == 0 {
					t.Fatalf("problem without a place: %#v", p)
				}
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("a problem shows a secret's value:\n%v", err)
			}
			return
		}
		if c.Path != name || len(c.SHA256) != 64 {
			t.Fatalf("Path %q, SHA256 %q", c.Path, c.SHA256)
		}
		for _, w := range c.Warnings() {
			if w.Pos.File != name || w.Key == "" && w.Pos.Line == 0 {
				t.Fatalf("warning without a place: %#v", w)
			}
		}
		again, err := Parse(name, data, opts...)
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("a second Parse of the same bytes differs: %v\n%#v\n%#v", err, c, again)
		}
		// Validate the Config Parse returned, with the key positions of the
		// file it came from.
		d := newDecoder(name, filepath.Dir(name), options{lookupEnv: fuzzEnv, exprCheck: fuzzExprCheck})
		var scratch Config = Defaults()
		d.decodeFile(data, &scratch)
		d.problems = nil
		d.validate(again)
		if len(d.problems) > 0 {
			t.Fatalf("the Config Parse returned does not validate:\n%v", d.problems)
		}
	})
}

// reachesDevices reports whether a configuration may name a device or
// kernel file, which a {file: PATH} secret would read: /dev/zero never
// ends. Inputs with the YAML escapes that could spell such a path
// ("\x2fdev") are left out with them.
func reachesDevices(data []byte) bool {
	for _, s := range []string{"/dev", "/proc", "/sys", `\x`, `\u`, `\U`, `\/`} {
		if bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}
