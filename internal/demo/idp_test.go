package demo

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/careflow-health/careflow/connectors/httpx"
)

// startIdP runs an identity provider on a free loopback port until the
// test ends.
func startIdP(t *testing.T) *IdP {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := StartIdP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.Close() })
	return p
}

// verifier is careflow's own JWT check, fetching the IdP's JWKS over HTTP
// as the engine does with auth.issuers jwks_url.
func verifier(t *testing.T, p *IdP) *httpx.JWTVerifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := httpx.NewJWTVerifier(ctx, httpx.JWTConfig{Issuer: p.Issuer(), Audience: IdPAudience, JWKSURL: p.JWKSURL(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Tokens from Mint and from POST /token verify against the IdP's JWKS
// with careflow's verifier, carrying the subject and scopes asked for.
func TestIdPTokensVerify(t *testing.T) {
	p := startIdP(t)
	v := verifier(t, p)
	ctx := context.Background()

	minted, err := p.Mint("careflow/apps.write  system/Patient.write", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := FetchToken(ctx, p.Addr(), "careflow/apps.write system/Observation.write", "ward-tablet")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, sub string
		scopes           []string
	}{
		{"Mint", minted, DefaultSubject, []string{"careflow/apps.write", "system/Patient.write"}},
		{"POST /token", fetched, "ward-tablet", []string{"careflow/apps.write", "system/Observation.write"}},
	} {
		c, err := v.Verify(ctx, tc.token)
		if err != nil {
			t.Errorf("%s: token does not verify: %v", tc.name, err)
			continue
		}
		if c.Subject != tc.sub || c.Issuer != p.Issuer() || !slices.Equal(c.Scopes, tc.scopes) {
			t.Errorf("%s: claims sub %q iss %q scopes %v, want %q %q %v", tc.name, c.Subject, c.Issuer, c.Scopes, tc.sub, p.Issuer(), tc.scopes)
		}
	}

	// The registered claims careflow and other verifiers rely on.
	var rc jwt.RegisteredClaims
	tok, _, err := jwt.NewParser().ParseUnverified(fetched, &rc)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["kid"] == "" || tok.Header["alg"] != "ES256" {
		t.Errorf("header %v: want alg ES256 and a kid", tok.Header)
	}
	if rc.ID == "" || rc.IssuedAt == nil || rc.ExpiresAt == nil || rc.ExpiresAt.Sub(rc.IssuedAt.Time) != time.Hour {
		t.Errorf("jti %q iat %v exp %v: want a jti and exp an hour after iat", rc.ID, rc.IssuedAt, rc.ExpiresAt)
	}
	if second, _ := p.Mint("x", "", time.Minute); second == minted {
		t.Error("two tokens are identical: jti is not random")
	}

	// Another IdP's key (a demo restarted since) does not verify here.
	other := startIdP(t)
	foreign, _ := other.Mint("careflow/apps.write", "", time.Minute)
	if _, err := v.Verify(ctx, foreign); err == nil {
		t.Error("a token signed by another identity provider's key verified")
	}
}

func TestIdPRefusals(t *testing.T) {
	p := startIdP(t)
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"no scope", url.Values{"sub": {"x"}}, "invalid_scope"},
		{"password grant", url.Values{"scope": {"a"}, "grant_type": {"password"}}, "unsupported_grant_type"},
		{"control character in sub", url.Values{"scope": {"a"}, "sub": {"a\nb"}}, "invalid_request"},
	} {
		resp, err := http.PostForm("http://"+p.Addr()+"/token", tc.form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", tc.name, resp.StatusCode)
		}
		if _, err := FetchToken(context.Background(), p.Addr(), tc.form.Get("scope"), tc.form.Get("sub")); tc.name != "password grant" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: FetchToken = %v, want %s", tc.name, err, tc.want)
		}
	}
	if _, err := StartIdP(context.Background(), "0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("StartIdP on every interface = %v, want refused", err)
	}
	p.Close()
	p.Close() // idempotent
	if _, err := FetchToken(context.Background(), p.Addr(), "a", ""); !errors.Is(err, ErrIdPNotRunning) {
		t.Errorf("FetchToken from a stopped IdP = %v, want ErrIdPNotRunning", err)
	}
}
