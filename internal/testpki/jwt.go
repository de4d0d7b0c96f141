package testpki

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is a JWT issuer (an identity provider) for one test: an RSA key,
// published as a JWK Set, that signs tokens.
type Issuer struct {
	URL string // the "iss" of its tokens
	Key *rsa.PrivateKey
	KID string
}

// NewIssuer makes an issuer whose tokens carry iss.
func NewIssuer(t testing.TB, iss string) *Issuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{URL: iss, Key: k, KID: "test-1"}
}

// JWKS is the issuer's public key as a JWK Set.
func (is *Issuer) JWKS() []byte {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	b, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": is.KID, "alg": "RS256", "use": "sig",
		"n": b64(is.Key.N.Bytes()), "e": b64(big.NewInt(int64(is.Key.E)).Bytes()),
	}}})
	return b
}

// Token signs a token for audience aud, subject sub and scope, valid for
// ttl from now (a negative ttl makes it expired); extra claims override.
func (is *Issuer) Token(t testing.TB, aud, sub, scope string, ttl time.Duration, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"iss": is.URL, "aud": aud, "sub": sub, "scope": scope,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = is.KID
	s, err := tok.SignedString(is.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
