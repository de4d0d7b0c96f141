// Package smart is SMART Backend Services client authentication
// (http://hl7.org/fhir/smart-app-launch/backend-services.html): a system
// with no user signs a short-lived JWT with its private key and trades it
// at the FHIR server's token endpoint for an access token, in an OAuth 2.0
// client credentials grant (RFC 6749 §4.4) with a JWT client assertion
// (RFC 7523). golang.org/x/oauth2 makes the token request and caches the
// token; golang-jwt signs the assertion.
package smart

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// AssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionLifetime is how far in the future an assertion's exp is. SMART
// allows at most five minutes; one less leaves room for a clock that runs
// ahead of the authorization server's.
const AssertionLifetime = 4 * time.Minute

// DefaultTimeout bounds one token request when Config.HTTPClient is nil.
const DefaultTimeout = 10 * time.Second

// DefaultEarlyExpiry is how long before its expiry a cached token is
// replaced when Config.EarlyExpiry is zero, so that a token is not sent in
// its last seconds and refused on arrival.
const DefaultEarlyExpiry = 30 * time.Second

// Config is one client registered with one authorization server.
type Config struct {
	// TokenURL is the server's token endpoint (the token_endpoint of its
	// .well-known/smart-configuration). It is also the assertion's aud.
	TokenURL string
	// ClientID is the id the server gave the client at registration: the
	// assertion's iss and sub.
	ClientID string
	// Scopes requested, e.g. "system/Patient.cud" (SMART v2) or
	// "system/*.write" (v1).
	Scopes []string
	// Key signs the assertions: an *rsa.PrivateKey of at least 2048 bits
	// (RS384) or an *ecdsa.PrivateKey on P-384 (ES384), whose public key
	// the server holds in the client's JWK Set (LoadKey reads one).
	Key crypto.Signer
	// KeyID is the kid of Key's public key in that JWK Set, sent in the
	// assertion's header so the server can pick the key.
	KeyID string
	// HTTPClient makes the token requests. Default: a client with
	// DefaultTimeout.
	HTTPClient *http.Client
	// EarlyExpiry is how long before its expiry a token is replaced.
	// Default: DefaultEarlyExpiry.
	EarlyExpiry time.Duration
}

// Validate reports the first thing wrong with c, naming the field.
func (c Config) Validate() error {
	if _, err := url.ParseRequestURI(c.TokenURL); err != nil || c.TokenURL == "" {
		return fmt.Errorf("smart: token URL %q is not an absolute URL", c.TokenURL)
	}
	if c.ClientID == "" {
		return errors.New("smart: client id is required (the id the authorization server registered)")
	}
	if c.KeyID == "" {
		return errors.New("smart: key id (kid) is required: the server picks the public key by it")
	}
	_, err := signingMethod(c.Key)
	return err
}

// signingMethod is the JWS algorithm for key: SMART requires servers to
// support RS384 and ES384, so those are the two careflow signs with.
func signingMethod(key crypto.Signer) (jwt.SigningMethod, error) {
	switch k := key.(type) {
	case nil:
		return nil, errors.New("smart: a private key is required")
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("smart: RSA key has %d bits; use at least 2048", k.N.BitLen())
		}
		return jwt.SigningMethodRS384, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("smart: EC key is on %s; ES384 needs P-384", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES384, nil
	}
	return nil, fmt.Errorf("smart: key type %T is not supported: give an RSA key (RS384) or a P-384 EC key (ES384)", key)
}

// TokenSource returns the client's access tokens: each is fetched with a
// freshly signed assertion, cached until EarlyExpiry before it expires,
// then replaced. ctx governs every token request the source makes (as in
// golang.org/x/oauth2), so it should live as long as the source, not one
// send. An invalid cfg makes every Token call fail with Validate's error.
//
// The source is a *Source: a resource server that refuses a token can
// have it dropped with Invalidate.
func TokenSource(ctx context.Context, cfg Config) oauth2.TokenSource {
	return newSource(ctx, cfg)
}

func newSource(ctx context.Context, cfg Config) *Source {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	if cfg.EarlyExpiry <= 0 {
		cfg.EarlyExpiry = DefaultEarlyExpiry
	}
	s := &Source{early: cfg.EarlyExpiry}
	if err := cfg.Validate(); err != nil {
		s.base = failing{err}
	} else {
		method, _ := signingMethod(cfg.Key)
		s.base = &assertionSource{ctx: context.WithValue(ctx, oauth2.HTTPClient, cfg.HTTPClient), cfg: cfg, method: method}
	}
	s.cache = oauth2.ReuseTokenSourceWithExpiry(nil, s.base, s.early)
	return s
}

// Source is a SMART Backend Services token source (see TokenSource). It
// is safe for concurrent use.
type Source struct {
	base  oauth2.TokenSource
	early time.Duration

	mu    sync.Mutex
	cache oauth2.TokenSource // an oauth2.ReuseTokenSource over base
	last  string             // the access token cache last gave out
}

// Token implements oauth2.TokenSource.
func (s *Source) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	cache := s.cache
	s.mu.Unlock()
	t, err := cache.Token()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if cache == s.cache {
		s.last = t.AccessToken
	}
	s.mu.Unlock()
	return t, nil
}

// Invalidate drops t from the cache, so that the next Token call fetches
// a new one: for a resource server that answered 401 to it (revoked, or
// the server restarted and forgot it). A t already replaced is left
// alone, so that concurrent senders refused the same token fetch one new
// token between them, not one each.
func (s *Source) Invalidate(t *oauth2.Token) {
	if t == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != "" && s.last != t.AccessToken {
		return
	}
	s.cache = oauth2.ReuseTokenSourceWithExpiry(nil, s.base, s.early)
	s.last = ""
}

// assertionSource fetches one token per call, each with a new assertion:
// clientcredentials sends the same EndpointParams every time, so it is
// configured afresh for each request.
type assertionSource struct {
	ctx    context.Context
	cfg    Config
	method jwt.SigningMethod
}

func (a *assertionSource) Token() (*oauth2.Token, error) {
	assertion, err := a.assertion(time.Now())
	if err != nil {
		return nil, err
	}
	cc := clientcredentials.Config{
		// No client_id parameter: the assertion's sub identifies the
		// client (RFC 7521 §4.2), and SMART lists only these four.
		TokenURL: a.cfg.TokenURL,
		Scopes:   a.cfg.Scopes,
		EndpointParams: url.Values{
			"client_assertion_type": {AssertionType},
			"client_assertion":      {assertion},
		},
		// Never HTTP Basic: there is no client secret.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	t, err := cc.Token(a.ctx)
	if err != nil {
		return nil, tokenError(a.cfg, err)
	}
	return t, nil
}

// assertion signs a client assertion for one token request at now.
func (a *assertionSource) assertion(now time.Time) (string, error) {
	jti, err := newJTI()
	if err != nil {
		return "", err
	}
	tok := jwt.NewWithClaims(a.method, jwt.RegisteredClaims{
		Issuer:    a.cfg.ClientID,
		Subject:   a.cfg.ClientID,
		Audience:  jwt.ClaimStrings{a.cfg.TokenURL},
		ExpiresAt: jwt.NewNumericDate(now.Add(AssertionLifetime)),
		ID:        jti,
	})
	tok.Header["kid"] = a.cfg.KeyID
	s, err := tok.SignedString(a.cfg.Key)
	if err != nil {
		return "", fmt.Errorf("smart: sign client assertion with key %s: %w", a.cfg.KeyID, err)
	}
	return s, nil
}

// newJTI is an assertion's unique id: servers reject a jti they have seen
// (replay protection), so it is 128 random bits.
func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("smart: random jti: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// TokenError is a token request the authorization server refused, or that
// did not reach it.
type TokenError struct {
	TokenURL string
	ClientID string
	Status   int    // the HTTP status; 0 when there was no answer
	Code     string // RFC 6749's error, e.g. "invalid_client"
	Err      error
}

func (e *TokenError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("smart: token request to %s for client %s: %v", e.TokenURL, e.ClientID, e.Err)
	case e.Status == http.StatusUnauthorized || e.Code == "invalid_client":
		return fmt.Sprintf("smart: token endpoint %s refused client %s (%s): check the client id, that the server holds the public key of the configured kid, and the clock",
			e.TokenURL, e.ClientID, e.answer())
	}
	return fmt.Sprintf("smart: token endpoint %s answered client %s with %s", e.TokenURL, e.ClientID, e.answer())
}

func (e *TokenError) answer() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d %s", e.Status, e.Code)
}

func (e *TokenError) Unwrap() error { return e.Err }

// tokenError wraps what clientcredentials returned. The server's
// error_description is not in the message (it is in Err): it is the
// server's free text, of any length.
func tokenError(cfg Config, err error) error {
	te := &TokenError{TokenURL: redacted(cfg.TokenURL), ClientID: cfg.ClientID, Err: err}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil {
			te.Status = re.Response.StatusCode
		}
		te.Code = re.ErrorCode
	}
	return te
}

func redacted(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(token URL)"
	}
	return p.Redacted()
}

// failing is the source of an invalid Config.
type failing struct{ err error }

func (f failing) Token() (*oauth2.Token, error) { return nil, f.err }
