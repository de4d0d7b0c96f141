package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoHash is the SHA-256 of the token "t0ken".
var demoHash = func() string { s := sha256.Sum256([]byte("t0ken")); return hex.EncodeToString(s[:]) }()

// writeCerts puts empty files where tests name TLS files, so that the
// file-exists check passes; nothing here reads them.
func writeCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"s.pem", "s.key", "ca.pem", "jwks.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWriterProblems(t *testing.T) {
	dir := writeCerts(t)
	cases := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"bad address", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    writers: {addresses: [10.0.0.0/33]}
`, 5, "inbound[0].writers.addresses[0]", "want an IP address or CIDR range"},
		{"bad certificate pattern", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    tls: {cert_file: s.pem, key_file: s.key, client_ca_file: ca.pem}
    writers: {certificates: [lab.hospital]}
`, 6, "inbound[0].writers.certificates[0]", "want CN=name, DNS:name"},
		{"certificates without a client CA", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    writers:
      certificates: ["CN=ehr"]
`, 6, "inbound[0].writers.certificates", "only verified with tls.client_ca_file"},
		{"tokens on an interface not written over HTTP", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    writers:
      tokens: [{name: ehr, sha256: ` + demoHash + `}]
`, 5, "inbound[0].writers", "add http: true or remove them"},
		{"mutual TLS bypassed over HTTP", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    http: true
    tls: {cert_file: s.pem, key_file: s.key, client_ca_file: ca.pem}
`, 5, "inbound[0].http", "requires client certificates over MLLP, so HTTP writers need a credential too"},
		{"HTTP certificates without an HTTP client CA", `
inbound:
  - name: scanner
    transport: http
    writers: {certificates: ["CN=scanner"]}
`, 5, "inbound[0].writers.certificates", "without http.tls.client_ca_file"},
		{"HTTP writes with HTTP off", `
http: {listen: ""}
inbound:
  - name: scanner
    transport: http
`, 5, "inbound[0].transport", "HTTP ingest is off"},
		{"http: true with HTTP off", `
http: {listen: ""}
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    http: true
`, 6, "inbound[0].http", "HTTP ingest is off"},
		{"token hash is not a hash", `
inbound:
  - name: scanner
    transport: http
    writers: {tokens: [{name: a, sha256: "my-secret-token"}]}
`, 5, "inbound[0].writers.tokens[0].sha256", "want a SHA-256 in hex"},
		{"token without hash", `
inbound:
  - name: scanner
    transport: http
    writers:
      tokens:
        - name: a
`, 7, "inbound[0].writers.tokens[0].sha256", "sha256 is required"},
		{"token names repeat", `
inbound:
  - name: scanner
    transport: http
    writers:
      tokens:
        - {name: a, sha256: ` + demoHash + `}
        - {name: a, sha256: ` + demoHash + `}
`, 8, "inbound[0].writers.tokens[1].name", "already used"},
		{"unknown JWT issuer", `
auth:
  issuers: [{name: idp, issuer: "https://idp", audience: careflow, jwks_file: jwks.json}]
inbound:
  - name: scanner
    transport: http
    writers: {jwt: {issuer: ipd}}
`, 7, "inbound[0].writers.jwt.issuer", `(did you mean "idp"?)`},
		{"issuer without keys", `
auth:
  issuers:
    - {name: idp, issuer: "https://idp", audience: careflow}
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 4, "auth.issuers[0]", "give jwks_url or jwks_file"},
		{"JWKS over plain HTTP to another host", `
auth:
  issuers:
    - {name: idp, issuer: "https://idp", audience: careflow, jwks_url: "http://idp.hospital/keys"}
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 4, "auth.issuers[0].jwks_url", "want an https:// URL"},
		{"per-peer limit above the limit", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    max_connections: 10
    max_connections_per_peer: 11
`, 6, "inbound[0].max_connections_per_peer", "at most max_connections (10)"},
		{"first byte timeout above idle timeout", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    idle_timeout: 1m
    first_byte_timeout: 2m
`, 6, "inbound[0].first_byte_timeout", "at most idle_timeout"},
		{"mllp limits on an http interface", `
inbound:
  - name: scanner
    transport: http
    first_byte_timeout: 5s
`, 5, "inbound[0].first_byte_timeout", "applies to mllp interfaces only"},
		{"admin TLS without a key", `
admin: {listen: 127.0.0.1:9464, tls: {cert_file: s.pem}}
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 2, "admin.tls", "needs cert_file and key_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "t.yaml"), []byte(tc.yaml), WithLookupEnv(noEnv))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse error = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Pos.Line == tc.line && p.Key == tc.key && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("want problem at line %d key %q containing %q; got:\n%v", tc.line, tc.key, tc.msg, err)
		})
	}
}

// The hash refusal must not echo what was written: it may be the token.
func TestTokenProblemDoesNotEchoValue(t *testing.T) {
	_, err := Parse("t.yaml", []byte(`
inbound:
  - name: scanner
    transport: http
    writers: {tokens: [{name: a, sha256: "hunter2-the-real-token"}]}
`), WithLookupEnv(noEnv))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error = %v: want a refusal that does not quote the value", err)
	}
}

func TestWritersLoad(t *testing.T) {
	dir := writeCerts(t)
	if err := os.WriteFile(filepath.Join(dir, "admin.sha256"), []byte(demoHash+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(filepath.Join(dir, "t.yaml"), []byte(`
admin:
  tokens: [{name: ops, sha256: {file: admin.sha256}}]
auth:
  issuers: [{name: idp, issuer: "https://idp", audience: careflow, jwks_file: jwks.json}]
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    http: true
    writers:
      addresses: [10.20.0.0/16, 10.30.1.5]
      tokens: [{name: batch, sha256: `+strings.ToUpper(demoHash)+`}]
      jwt: {issuer: idp}
  - name: scanner
    transport: http
    writers: {jwt: {issuer: idp, scope: "hl7/scan.write"}}
`), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte("t0ken"))
	if got := c.Admin.Tokens[0].SHA256.Sum(); got != want {
		t.Errorf("admin token from file: hash %x, want %x", got, want)
	}
	ehr := c.Inbound[0]
	if got := ehr.Writers.Tokens[0].SHA256.Sum(); got != want {
		t.Errorf("upper-case hex: hash %x, want %x", got, want)
	}
	if !ehr.HTTPWritable() || c.Inbound[1].HTTPWritable() != true {
		t.Error("HTTPWritable: want true for http: true and for transport http")
	}
	if ehr.Writers.JWT.Scope != "careflow/ehr.write" || c.Inbound[1].Writers.JWT.Scope != "hl7/scan.write" {
		t.Errorf("scopes = %q, %q: want the default for ehr and the written one for scanner", ehr.Writers.JWT.Scope, c.Inbound[1].Writers.JWT.Scope)
	}
	if c.Auth.Issuers[0].JWKSFile != filepath.Join(dir, "jwks.json") {
		t.Errorf("jwks_file not resolved against the file's directory: %s", c.Auth.Issuers[0].JWKSFile)
	}
	addrs := ParseAddresses(ehr.Writers.Addresses)
	if len(addrs) != 2 || addrs[1].String() != "10.30.1.5/32" {
		t.Errorf("addresses = %v", addrs)
	}
	if ehr.FirstByteTimeout == 0 || ehr.HandshakeTimeout == 0 || ehr.MaxConnectionsPerPeer == 0 || ehr.Charset != "UTF-8" {
		t.Errorf("defaults not applied: %+v", ehr)
	}
	if len(c.SHA256) != 64 {
		t.Errorf("configuration hash %q, want 64 hex characters", c.SHA256)
	}
}

func TestWarnings(t *testing.T) {
	dir := writeCerts(t)
	c, err := Parse(filepath.Join(dir, "t.yaml"), []byte(`
kafka: {listen: 0.0.0.0:9092}
admin: {listen: 0.0.0.0:9464}
http: {listen: ":8080"}
inbound:
  - name: open
    listen: 0.0.0.0:2575
  - name: tls-only
    listen: 0.0.0.0:2576
    tls: {cert_file: s.pem, key_file: s.key}
  - name: mutual
    listen: 0.0.0.0:2577
    tls: {cert_file: s.pem, key_file: s.key, client_ca_file: ca.pem}
  - name: local
    listen: 127.0.0.1:2578
  - name: scanner
    transport: http
  - name: guarded
    transport: http
    writers: {tokens: [{name: a, sha256: `+demoHash+`}]}
`), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings() {
		got = append(got, w.Key)
	}
	want := []string{"kafka.listen", "admin.listen", "http.listen", "inbound[0].listen", "inbound[1].tls", "inbound[4].name"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("warnings at %v, want %v:\n%v", got, want, c.Warnings())
	}
	for _, w := range c.Warnings() {
		if w.Pos.Line == 0 {
			t.Errorf("warning %v has no line", w)
		}
	}

	quiet, err := Parse("t.yaml", []byte(`inbound: [{name: ehr, listen: 127.0.0.1:2575}]`), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if len(quiet.Warnings()) != 0 {
		t.Errorf("loopback-only configuration warned: %v", quiet.Warnings())
	}
}

func TestDestinationContentProblems(t *testing.T) {
	base := `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
routes: [{name: r, destination: portal, when: "true"}]
destinations:
  - name: portal
    transport: http
    url: http://127.0.0.1:6663/
    format: json
`
	cases := []struct {
		name, extra string
		line        int
		key, msg    string
	}{
		{"fields typo", "    fields: [patient.identifiers, patient.famly_name]\n", 9, "destinations[0].fields[1]", `(did you mean "patient.family_name"?)`},
		{"fields written empty", "    fields:\n", 9, "destinations[0].fields", "fields has no value"},
		{"JSON in another charset", "    charset: 8859/1\n", 9, "destinations[0].charset", "JSON is always UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(base+tc.extra), WithLookupEnv(noEnv))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse error = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Pos.Line == tc.line && p.Key == tc.key && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("want problem at line %d key %q containing %q; got:\n%v", tc.line, tc.key, tc.msg, err)
		})
	}
	c, err := Parse("t.yaml", []byte(base+"    fields: []\n"), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if c.Destinations[0].Fields == nil || len(c.Destinations[0].Fields) != 0 {
		t.Errorf("fields: [] = %#v, want an empty, non-nil list (envelope only)", c.Destinations[0].Fields)
	}
	if c, err = Parse("t.yaml", []byte(base), WithLookupEnv(noEnv)); err != nil || c.Destinations[0].Fields != nil {
		t.Errorf("no fields key: %#v, %v; want nil (everything)", c.Destinations[0].Fields, err)
	}
}

// A file that lowers max_connections or idle_timeout, and says nothing of
// the per-peer limit or the first-byte wait, still loads: those defaults
// follow the limits (they were added later, and old files must not break).
func TestNewLimitsFollowOldKeys(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    max_connections: 10
    idle_timeout: 15s
`), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	in := c.Inbound[0]
	if in.MaxConnectionsPerPeer != 10 || in.FirstByteTimeout != 15*time.Second {
		t.Errorf("per-peer %d, first byte %s; want 10 and 15s", in.MaxConnectionsPerPeer, in.FirstByteTimeout)
	}
}
