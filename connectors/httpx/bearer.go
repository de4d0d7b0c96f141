// This file checks the bearer credentials an HTTP client presents (RFC
// 6750): static tokens, known only by their SHA-256, and JWTs (RFC 7519)
// signed by a trusted issuer whose public keys are a JWK Set (RFC 7517).
// golang-jwt does the token parsing and the signature and claim checks;
// keyfunc fetches and refreshes the issuer's keys.

package httpx

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// ErrNoCredential means the request carries no bearer token.
var ErrNoCredential = errors.New("no bearer token")

// BearerToken returns the token of an "Authorization: Bearer TOKEN"
// header.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoCredential
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", errors.New("the Authorization header is not \"Bearer TOKEN\"")
	}
	return strings.TrimSpace(token), nil
}

// StaticTokens checks static bearer tokens against their SHA-256. The
// tokens themselves are never held, so neither the configuration nor this
// process's memory can leak one.
type StaticTokens struct {
	names  []string
	hashes [][32]byte
}

// AddToken accepts the token whose SHA-256 is sum, under name.
func (s *StaticTokens) AddToken(name string, sum [32]byte) {
	s.names = append(s.names, name)
	s.hashes = append(s.hashes, sum)
}

// Len is the number of tokens accepted; none means the interface asks for no token.
func (s *StaticTokens) Len() int { return len(s.names) }

// Verify returns the name of token, or false when it is none of the
// accepted ones. Every hash is compared, in constant time, so the time
// taken says nothing about which one came close.
func (s *StaticTokens) Verify(token string) (string, bool) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.hashes {
		if subtle.ConstantTimeCompare(sum[:], s.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return s.names[found], true
}

// JWTConfig says which tokens a JWTVerifier accepts.
type JWTConfig struct {
	Issuer   string // required "iss"
	Audience string // required among "aud"
	// JWKSURL is where the issuer publishes its keys (fetched at start,
	// refreshed hourly and when a token names an unknown key id), or
	// JWKS is the key set itself.
	JWKSURL string
	JWKS    []byte
	// Leeway tolerates clock skew on exp, nbf and iat. Default: 30s.
	Leeway time.Duration
	Logger *slog.Logger
}

// Claims are what careflow takes from a verified token.
type Claims struct {
	Subject  string   // "sub" (or "client_id" when there is no sub)
	Issuer   string   // "iss"
	Scopes   []string // "scope" (space-separated) or "scp"
	ClientID string
}

// HasScope reports whether the token grants scope.
func (c Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// JWTVerifier checks bearer JWTs of one issuer: the signature with one of
// its keys, and iss, aud, exp (required), nbf and iat.
type JWTVerifier struct {
	cfg    JWTConfig
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// signingMethods are the algorithms accepted: asymmetric only, so that a
// public key can never be used as an HMAC secret, and never "none".
var signingMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// NewJWTVerifier prepares a verifier. With JWKSURL it starts refreshing
// the issuer's keys until ctx ends; an issuer that cannot be reached yet
// is not an error (its keys are fetched when the first token needs them).
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, fmt.Errorf("jwt verifier for issuer %q, audience %q: both are required", cfg.Issuer, cfg.Audience)
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var (
		keys keyfunc.Keyfunc
		err  error
	)
	switch {
	case cfg.JWKSURL != "":
		keys, err = keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			HTTPTimeout: 10 * time.Second,
			// Keys are refreshed every 15 minutes, and at most every 10 s
			// when a token names a key id not yet known (an issuer that
			// rotated its keys). Anyone can send such a token, so the
			// limit protects the issuer; a token never waits long for it.
			RefreshInterval:   15 * time.Minute,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(10*time.Second), 1),
			RateLimitWaitMax:  2 * time.Second,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					cfg.Logger.WarnContext(ctx, "refresh JWT issuer keys", "issuer", cfg.Issuer, "jwks_url", u, "err", err)
				}
			},
		})
	case len(cfg.JWKS) > 0:
		keys, err = keyfunc.NewJWKSetJSON(json.RawMessage(cfg.JWKS))
	default:
		return nil, fmt.Errorf("jwt verifier for %s: give a JWKS URL or a JWK Set", cfg.Issuer)
	}
	if err != nil {
		return nil, fmt.Errorf("jwt verifier for %s: %w", cfg.Issuer, err)
	}
	return &JWTVerifier{cfg: cfg, keys: keys, parser: jwt.NewParser(
		jwt.WithValidMethods(signingMethods),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
	)}, nil
}

// jwtClaims are the registered claims plus the scope forms in use: OAuth
// 2.0's space-separated "scope" (RFC 8693) and the "scp" list some
// providers send.
type jwtClaims struct {
	jwt.RegisteredClaims
	Scope    string `json:"scope"`
	Scp      any    `json:"scp"`
	ClientID string `json:"client_id"`
}

// JWTError is a refused token. Its text is one of a few fixed reasons,
// never the library's message: that can quote what the sender wrote (a
// key id, a claim), which must not reach logs, audit records or replies,
// and whose variety would defeat the folding of repeated refusals.
type JWTError struct {
	Reason string // "expired", "wrong audience", ...
	err    error
}

func (e *JWTError) Error() string { return "bearer JWT refused: " + e.Reason }

// Unwrap returns golang-jwt's error, for errors.Is(err, jwt.ErrTokenExpired).
func (e *JWTError) Unwrap() error { return e.err }

// jwtReason names what was wrong with a token in careflow's words.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing a required claim (exp)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signed by a key the issuer does not publish"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return "signed with a signing method careflow does not accept (asymmetric algorithms only)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	}
	return "invalid"
}

// Verify checks token and returns its claims. A refusal is a *JWTError
// saying what was wrong (expired, wrong audience, bad signature) in
// careflow's words only.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Claims, error) {
	var c jwtClaims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keys.KeyfuncCtx(ctx)); err != nil {
		return Claims{}, &JWTError{Reason: jwtReason(err), err: err}
	}
	out := Claims{Subject: c.Subject, Issuer: c.Issuer, ClientID: c.ClientID, Scopes: strings.Fields(c.Scope)}
	switch scp := c.Scp.(type) {
	case string:
		out.Scopes = append(out.Scopes, strings.Fields(scp)...)
	case []any:
		for _, s := range scp {
			if str, ok := s.(string); ok {
				out.Scopes = append(out.Scopes, str)
			}
		}
	}
	if out.Subject == "" {
		out.Subject = c.ClientID
	}
	return out, nil
}
