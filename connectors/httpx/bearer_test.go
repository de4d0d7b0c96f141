package httpx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestBearerToken(t *testing.T) {
	cases := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"", "", false},
		{"Basic dXNlcjpwdw==", "", false},
		{"Bearer ", "", false},
		{"Bearerabc", "", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		got, err := BearerToken(r)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: got %q, %v; want %q, ok=%v", c.header, got, err, c.want, c.ok)
		}
	}
}

func TestStaticTokens(t *testing.T) {
	var s StaticTokens
	s.AddToken("lab", sha256.Sum256([]byte("lab-secret")))
	s.AddToken("ehr", sha256.Sum256([]byte("ehr-secret")))
	for token, want := range map[string]string{"lab-secret": "lab", "ehr-secret": "ehr", "lab-secre": "", "": "", "LAB-SECRET": ""} {
		name, ok := s.Verify(token)
		if name != want || ok != (want != "") {
			t.Errorf("Verify(%q) = %q, %v; want %q", token, name, ok, want)
		}
	}
}

// issuer is a test identity provider: its keys as a JWK Set, and tokens
// signed with them.
type issuer struct {
	rsaKey *rsa.PrivateKey
	ecKey  *ecdsa.PrivateKey
	jwks   []byte
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	ecdh, err := ek.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	pt := ecdh.Bytes() // 0x04 || X || Y
	set := map[string]any{"keys": []any{
		map[string]any{"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig",
			"n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		map[string]any{"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256",
			"x": b64(pt[1:33]), "y": b64(pt[33:])},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{rsaKey: rk, ecKey: ek, jwks: b}
}

func (is *issuer) sign(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": "https://idp.test", "aud": "careflow", "sub": "lab-system",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"scope": "careflow/lab.write other",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestJWTVerifier(t *testing.T) {
	is := newIssuer(t)
	other := newIssuer(t)
	v, err := NewJWTVerifier(context.Background(), JWTConfig{Issuer: "https://idp.test", Audience: "careflow", JWKS: is.jwks})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&is.rsaKey.PublicKey)
	cases := []struct {
		name  string
		token string
		ok    bool
		why   string
	}{
		{"RS256 valid", is.sign(t, jwt.SigningMethodRS256, "rsa-1", is.rsaKey, claims(nil)), true, ""},
		{"ES256 valid", is.sign(t, jwt.SigningMethodES256, "ec-1", is.ecKey, claims(nil)), true, ""},
		{"no kid: every key tried", is.sign(t, jwt.SigningMethodRS256, "", is.rsaKey, claims(nil)), true, ""},
		{"expired", is.sign(t, jwt.SigningMethodRS256, "rsa-1", is.rsaKey, claims(func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		})), false, "expired"},
		{"no exp", is.sign(t, jwt.SigningMethodRS256, "rsa-1", is.rsaKey, claims(func(c jwt.MapClaims) { delete(c, "exp") })), false, "exp"},
		{"not yet valid", is.sign(t, jwt.SigningMethodRS256, "rsa-1", is.rsaKey, claims(func(c jwt.MapClaims) {
			c["nbf"] = time.Now().Add(time.Hour).Unix()
		})), false, "not valid yet"},
		{"wrong audience", is.sign(t, jwt.SigningMethodRS256, "rsa-1", is.rsaKey, claims(func(c jwt.MapClaims) { c["aud"] = "portal" })), false, "audience"},
		{"wrong issuer", is.sign(t, jwt.SigningMethodRS256, "rsa-1", is.rsaKey, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil" })), false, "issuer"},
		{"signed by another key", other.sign(t, jwt.SigningMethodRS256, "rsa-1", other.rsaKey, claims(nil)), false, "bad signature"},
		{"an unknown key id, quoted nowhere", other.sign(t, jwt.SigningMethodRS256, "kid-\\nFORGED", other.rsaKey, claims(nil)), false, "a key the issuer does not publish"},
		{"unsigned (alg none)", is.sign(t, jwt.SigningMethodNone, "rsa-1", jwt.UnsafeAllowNoneSignatureType, claims(nil)), false, "signing method"},
		// The public key as an HMAC secret: the classic algorithm confusion.
		{"HS256 with the public key", is.sign(t, jwt.SigningMethodHS256, "rsa-1", pub, claims(nil)), false, "signing method"},
		{"garbage", "not.a.jwt", false, "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), c.token)
			if c.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got.Subject != "lab-system" || !got.HasScope("careflow/lab.write") || got.HasScope("careflow/ehr.write") {
					t.Errorf("claims = %+v", got)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.why) {
				t.Errorf("error %q does not say %q", err, c.why)
			}
			if strings.Contains(err.Error(), c.token) || strings.Contains(err.Error(), "FORGED") {
				t.Errorf("error %q quotes the token", err)
			}
		})
	}
}

func TestJWTScopeForms(t *testing.T) {
	is := newIssuer(t)
	v, err := NewJWTVerifier(context.Background(), JWTConfig{Issuer: "https://idp.test", Audience: "careflow", JWKS: is.jwks})
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(jwt.MapClaims){
		"scp list":   func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = []string{"careflow/lab.write"} },
		"scp string": func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = "x careflow/lab.write" },
		"aud list":   func(c jwt.MapClaims) { c["aud"] = []string{"other", "careflow"} },
		"client_id":  func(c jwt.MapClaims) { delete(c, "sub"); c["client_id"] = "lab-system" },
	} {
		got, err := v.Verify(context.Background(), is.sign(t, jwt.SigningMethodRS256, "rsa-1", is.rsaKey, claims(mod)))
		if err != nil || !got.HasScope("careflow/lab.write") || got.Subject != "lab-system" {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
}

// Keys are fetched from the issuer's JWKS URL; an issuer unreachable at
// start is no error, and its keys are used once it answers.
func TestJWTVerifierFetchesKeys(t *testing.T) {
	is := newIssuer(t)
	var up atomic.Bool
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(is.jwks)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := NewJWTVerifier(ctx, JWTConfig{Issuer: "https://idp.test", Audience: "careflow", JWKSURL: srv.URL})
	if err != nil {
		t.Fatalf("an unreachable issuer stopped the start: %v", err)
	}
	up.Store(true)
	tok := is.sign(t, jwt.SigningMethodRS256, "rsa-1", is.rsaKey, claims(nil))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("token refused once the issuer answered: %v (%d fetches)", err, fetches.Load())
	}
}
