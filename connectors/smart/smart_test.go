package smart_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/careflow-health/careflow/connectors/smart"
)

// Keys are generated per test run; none is ever committed.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
)

func keys(t *testing.T) (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return rsaKey, ecKey
}

// tokenServer is an authorization server's token endpoint that checks
// every request as a SMART server must: grant, assertion type, the
// assertion's signature with the client's public key, its claims and
// header, and that its jti was never seen before.
type tokenServer struct {
	t         *testing.T
	srv       *httptest.Server
	public    crypto.PublicKey
	alg       string
	clientID  string
	kid       string
	expiresIn int
	status    int // non-zero: refuse every request with it

	mu       sync.Mutex
	requests int
	jtis     map[string]bool
}

func newTokenServer(t *testing.T, key crypto.Signer, alg string, expiresIn int) *tokenServer {
	ts := &tokenServer{t: t, public: key.Public(), alg: alg, clientID: "careflow-lab", kid: "k1", expiresIn: expiresIn, jtis: map[string]bool{}}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) url() string { return ts.srv.URL + "/token" }

func (ts *tokenServer) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.requests++
	if ts.status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ts.status)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"SERVER-WORDS kid unknown"}`)
		return
	}
	if err := ts.check(r); err != nil {
		ts.t.Errorf("token request %d: %v", ts.requests, err)
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer","expires_in":%d,"scope":"system/*.write"}`, ts.requests, ts.expiresIn)
}

func (ts *tokenServer) check(r *http.Request) error {
	if r.Method != http.MethodPost {
		return fmt.Errorf("method %s", r.Method)
	}
	if _, _, ok := r.BasicAuth(); ok {
		return errors.New("HTTP Basic credentials sent; a SMART backend has no secret")
	}
	if err := r.ParseForm(); err != nil {
		return err
	}
	for k, want := range map[string]string{
		"grant_type":            "client_credentials",
		"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
		"scope":                 "system/Patient.cud system/Observation.cud",
	} {
		if got := r.PostForm.Get(k); got != want {
			return fmt.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	var claims jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(r.PostForm.Get("client_assertion"), &claims,
		func(*jwt.Token) (any, error) { return ts.public, nil },
		jwt.WithValidMethods([]string{ts.alg}), jwt.WithIssuer(ts.clientID), jwt.WithSubject(ts.clientID),
		jwt.WithAudience(ts.url()), jwt.WithExpirationRequired())
	if err != nil {
		return fmt.Errorf("assertion: %w", err)
	}
	if kid := tok.Header["kid"]; kid != ts.kid {
		return fmt.Errorf("kid %v, want %s", kid, ts.kid)
	}
	if life := time.Until(claims.ExpiresAt.Time); life > 5*time.Minute {
		return fmt.Errorf("exp is %v ahead; SMART allows five minutes", life)
	}
	if claims.ID == "" || ts.jtis[claims.ID] {
		return fmt.Errorf("jti %q is empty or was used before", claims.ID)
	}
	ts.jtis[claims.ID] = true
	return nil
}

func (ts *tokenServer) config(key crypto.Signer) smart.Config {
	return smart.Config{TokenURL: ts.url(), ClientID: ts.clientID, KeyID: ts.kid, Key: key,
		Scopes: []string{"system/Patient.cud", "system/Observation.cud"}, HTTPClient: ts.srv.Client()}
}

func TestTokenSourceCachesAndRefreshes(t *testing.T) {
	rk, ek := keys(t)
	cases := []struct {
		name      string
		key       crypto.Signer
		alg       string
		expiresIn int
		calls     int
		requests  int
	}{
		{"RS384: cached", rk, "RS384", 3600, 2, 1},
		{"ES384: cached", ek, "ES384", 3600, 3, 1},
		// Within DefaultEarlyExpiry (30s) of its expiry a token is not
		// used: each call fetches a new one, with a new jti.
		{"near expiry: refreshed", ek, "ES384", 20, 2, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := newTokenServer(t, c.key, c.alg, c.expiresIn)
			src := smart.TokenSource(context.Background(), ts.config(c.key))
			var last string
			for i := range c.calls {
				tok, err := src.Token()
				if err != nil {
					t.Fatalf("call %d: %v", i+1, err)
				}
				if tok.Type() != "Bearer" || tok.AccessToken == "" {
					t.Fatalf("call %d: token %q of type %q", i+1, tok.AccessToken, tok.Type())
				}
				last = tok.AccessToken
			}
			if got := ts.count(); got != c.requests {
				t.Errorf("%d calls made %d token requests, want %d", c.calls, got, c.requests)
			}
			if want := fmt.Sprintf("tok-%d", c.requests); last != want {
				t.Errorf("last token %q, want %q", last, want)
			}
		})
	}
}

// TestTokenSourceRefreshesAfterExpiry uses a one-second token: it is
// reused while valid, and replaced once it has expired.
func TestTokenSourceRefreshesAfterExpiry(t *testing.T) {
	_, ek := keys(t)
	ts := newTokenServer(t, ek, "ES384", 1)
	cfg := ts.config(ek)
	cfg.EarlyExpiry = time.Nanosecond
	src := smart.TokenSource(context.Background(), cfg)
	first, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if again, err := src.Token(); err != nil || again.AccessToken != first.AccessToken {
		t.Fatalf("a valid token was not reused: %v, %v", again, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != first.AccessToken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token %q still in use 5s after its 1s expiry", tok.AccessToken)
		}
		time.Sleep(20 * time.Millisecond) // polling an expiry, not waiting for an event
	}
	if got := ts.count(); got != 2 {
		t.Errorf("%d token requests, want 2", got)
	}
}

func TestInvalidate(t *testing.T) {
	_, ek := keys(t)
	ts := newTokenServer(t, ek, "ES384", 3600)
	src := smart.TokenSource(context.Background(), ts.config(ek))
	inv, ok := src.(interface{ Invalidate(*oauth2.Token) })
	if !ok {
		t.Fatalf("%T has no Invalidate", src)
	}
	first, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	inv.Invalidate(first)
	second, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if second.AccessToken == first.AccessToken || ts.count() != 2 {
		t.Fatalf("after Invalidate: token %q, %d requests; want a new token from a second request", second.AccessToken, ts.count())
	}
	// Another sender refused the first token too, late: the second one
	// stays.
	inv.Invalidate(first)
	if third, err := src.Token(); err != nil || third.AccessToken != second.AccessToken || ts.count() != 2 {
		t.Errorf("a stale Invalidate dropped the current token: %v, %v, %d requests", third, err, ts.count())
	}
}

func TestTokenEndpointRefuses(t *testing.T) {
	_, ek := keys(t)
	ts := newTokenServer(t, ek, "ES384", 3600)
	ts.status = http.StatusUnauthorized
	_, err := smart.TokenSource(context.Background(), ts.config(ek)).Token()
	var te *smart.TokenError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T), want a *smart.TokenError", err, err)
	}
	if te.Status != http.StatusUnauthorized || te.Code != "invalid_client" {
		t.Errorf("status %d, code %q; want 401 invalid_client", te.Status, te.Code)
	}
	msg := err.Error()
	for _, want := range []string{"refused client careflow-lab", ts.url(), "kid"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "SERVER-WORDS") {
		t.Errorf("error %q quotes the server's description", msg)
	}
}

func TestTokenEndpointUnreachable(t *testing.T) {
	_, ek := keys(t)
	ts := newTokenServer(t, ek, "ES384", 3600)
	ts.srv.Close()
	_, err := smart.TokenSource(context.Background(), ts.config(ek)).Token()
	var te *smart.TokenError
	if !errors.As(err, &te) || te.Status != 0 || !strings.Contains(err.Error(), "token request to") {
		t.Fatalf("error %v, want a *smart.TokenError with no status", err)
	}
}

func TestConfigValidate(t *testing.T) {
	rk, ek := keys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := smart.Config{TokenURL: "https://auth.example.org/token", ClientID: "c", KeyID: "k", Key: rk}
	with := func(f func(*smart.Config)) smart.Config { c := good; f(&c); return c }
	cases := []struct {
		name string
		cfg  smart.Config
		want string // in the error; "" for none
	}{
		{"RSA", good, ""},
		{"EC P-384", with(func(c *smart.Config) { c.Key = ek }), ""},
		{"no token URL", with(func(c *smart.Config) { c.TokenURL = "" }), "token URL"},
		{"relative token URL", with(func(c *smart.Config) { c.TokenURL = "auth/token" }), "token URL"},
		{"no client id", with(func(c *smart.Config) { c.ClientID = "" }), "client id"},
		{"no kid", with(func(c *smart.Config) { c.KeyID = "" }), "kid"},
		{"no key", with(func(c *smart.Config) { c.Key = nil }), "private key is required"},
		{"RSA 1024", with(func(c *smart.Config) { c.Key = small }), "1024 bits"},
		{"EC P-256", with(func(c *smart.Config) { c.Key = p256 }), "P-384"},
		{"Ed25519", with(func(c *smart.Config) { c.Key = ed }), "not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
			// The source of an invalid configuration fails the same way,
			// without a request.
			if _, terr := smart.TokenSource(context.Background(), c.cfg).Token(); terr == nil || terr.Error() != err.Error() {
				t.Errorf("Token error %v, want %v", terr, err)
			}
		})
	}
}
