// This file fuzzes JWTVerifier.Verify, which reads the bearer JWTs HTTP
// writers present.

package httpx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzJWTVerify: Verify never panics; it accepts a token only when the
// signed part (header.payload) is one the issuer signed, so no mutation
// forges a token or changes a claim, and then returns that issuer with
// the scopes signed; its error never holds the token or its signature.
// The seeds are tokens signed at the start with a fresh P-256 key: valid
// ones, expired, for another audience, alg none, HS256 keyed with the
// public key, and some that are not JWTs at all.
func FuzzJWTVerify(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		f.Fatal(err)
	}
	pt := pub.Bytes() // 0x04 || X || Y
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, err := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:])}}})
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewJWTVerifier(context.Background(), JWTConfig{Issuer: "https://idp.test", Audience: "careflow", JWKS: jwks})
	if err != nil {
		f.Fatal(err)
	}

	// signed maps the signed part of every token the issuer signed to the
	// scopes it carries.
	signed := map[string][]string{}
	sign := func(method jwt.SigningMethod, kid string, signKey any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(signKey)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	// long is a token's claims, valid for two days unless mod says
	// otherwise.
	long := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		now := time.Now()
		c := jwt.MapClaims{
			"iss": "https://idp.test", "aud": "careflow", "sub": "lab-system",
			"exp": now.Add(48 * time.Hour).Unix(), "iat": now.Unix(), "scope": "careflow/lab.write other",
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	for _, c := range []struct {
		kid    string
		claims jwt.MapClaims
		scopes []string
	}{
		{"ec-1", long(nil), []string{"careflow/lab.write", "other"}},
		{"", long(func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = []any{"careflow/ehr.write", 7} }), []string{"careflow/ehr.write"}},
		{"ec-1", long(func(c jwt.MapClaims) { c["scope"] = "a"; c["scp"] = "b c"; delete(c, "sub"); c["client_id"] = "cli" }), []string{"a", "b", "c"}},
		{"ec-1", long(func(c jwt.MapClaims) { c["aud"] = []any{"x", "careflow"}; c["nbf"] = time.Now().Unix() }), []string{"careflow/lab.write", "other"}},
		{"ec-1", long(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), nil},
		{"ec-1", long(func(c jwt.MapClaims) { c["aud"] = "someone-else" }), nil},
		{"ec-1", long(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), nil},
		{"ec-1", long(func(c jwt.MapClaims) { delete(c, "exp") }), nil},
	} {
		tok := sign(jwt.SigningMethodES256, c.kid, key, c.claims)
		if c.scopes != nil {
			signed[tok[:strings.LastIndexByte(tok, '.')]] = c.scopes
		}
		f.Add(tok)
	}
	f.Add(sign(jwt.SigningMethodNone, "ec-1", jwt.UnsafeAllowNoneSignatureType, long(nil)))
	f.Add(sign(jwt.SigningMethodHS256, "ec-1", []byte(jwks), long(nil)))
	for _, s := range []string{"", "careflow-demo-token", "a.b.c", "..", "eyJhbGciOiJFUzI1NiJ9..", "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjLTEifQ.e30.AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := v.Verify(ctx, token)
		if err != nil {
			msg := err.Error()
			sig := token[strings.LastIndexByte(token, '.')+1:]
			if len(token) >= 16 && strings.Contains(msg, token) || len(sig) >= 16 && strings.Contains(msg, sig) {
				t.Fatalf("error shows the token: %v", err)
			}
			return
		}
		i := strings.LastIndexByte(token, '.')
		scopes, ok := signed[token[:max(i, 0)]]
		if i < 0 || !ok {
			t.Fatalf("accepted a token the issuer never signed: %q, claims %+v", token, c)
		}
		if c.Issuer != "https://idp.test" || strings.Join(c.Scopes, " ") != strings.Join(scopes, " ") {
			t.Fatalf("token %q gave claims %+v, want scopes %q", token, c, scopes)
		}
	})
}
