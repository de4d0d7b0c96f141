package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/internal/demo"
)

// `careflow demo token` prints a token from the running demo identity
// provider, alone on its line, that careflow's verifier accepts with the
// scopes and subject asked for.
func TestDemoToken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idp, err := demo.StartIdP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()

	code, out, errOut := runCLI("demo", "token", "--scope", "careflow/apps.write system/Observation.write", "--sub", "nurse-station", "--idp", idp.Addr())
	if code != 0 || errOut != "" {
		t.Fatalf("demo token: exit %d, stderr %q", code, errOut)
	}
	tok, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.ContainsAny(tok, " \n") {
		t.Fatalf("stdout %q: want the token alone on one line", out)
	}
	v, err := httpx.NewJWTVerifier(ctx, httpx.JWTConfig{Issuer: idp.Issuer(), Audience: demo.IdPAudience, JWKSURL: idp.JWKSURL()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("the printed token does not verify: %v", err)
	}
	if c.Subject != "nurse-station" || !slices.Equal(c.Scopes, []string{"careflow/apps.write", "system/Observation.write"}) {
		t.Errorf("token sub %q scopes %v", c.Subject, c.Scopes)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"demo not running", []string{"--scope", "x", "--idp", "127.0.0.1:1"}, 1, "the demo identity provider is not running at 127.0.0.1:1"},
		{"no scope", []string{"--idp", idp.Addr()}, 2, "demo token --scope"},
	} {
		code, out, errOut := runCLI(append([]string{"demo", "token"}, tc.args...)...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.name, code, out, errOut, tc.code, tc.want)
		}
	}
}

// The demo's identity provider listens where the demo issuer's jwks_url
// says, so that its "iss" is the configuration's.
func TestDemoIdPAddr(t *testing.T) {
	for _, tc := range []struct {
		issuers []config.Issuer
		want    string
	}{
		{nil, demo.DefaultIdP},
		{[]config.Issuer{{Name: "other", JWKSURL: "https://idp.example.org/jwks"}}, demo.DefaultIdP},
		{[]config.Issuer{{Name: "demo", JWKSURL: "http://127.0.0.1:7667/jwks.json"}}, "127.0.0.1:7667"},
	} {
		if got := demoIdPAddr(&config.Config{Auth: config.Auth{Issuers: tc.issuers}}); got != tc.want {
			t.Errorf("issuers %v: %s, want %s", tc.issuers, got, tc.want)
		}
	}
}
