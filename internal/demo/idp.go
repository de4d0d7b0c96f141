// This file is the demo's identity provider: it signs the bearer JWTs the
// demo's FHIR app (and whoever runs `careflow demo token`) presents to
// careflow's FHIR interface, and publishes its public key as a JWK Set for
// careflow's auth.issuers jwks_url. Its ES256 key is made in memory at
// start and never written anywhere, so a token outlives neither the demo
// nor the machine it ran on.

package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of the identity provider.
const (
	// DefaultIdP is where the identity provider listens.
	DefaultIdP = "127.0.0.1:6667"
	// IdPAudience is the "aud" of every token: careflow's auth.issuers
	// audience.
	IdPAudience = "careflow"
	// DefaultSubject is a token's "sub" when the request names none.
	DefaultSubject = "demo-app"
	// tokenTTL is how long a token from POST /token lasts.
	tokenTTL = time.Hour
	// maxTokenForm bounds the form POST /token reads.
	maxTokenForm = 16 << 10
)

// IdP is the demo's identity provider: GET /jwks.json, POST /token. Start
// one with StartIdP; it serves until its context ends or Close.
type IdP struct {
	key    *ecdsa.PrivateKey
	kid    string
	issuer string
	addr   string
	srv    *http.Server
	done   chan struct{}
	once   sync.Once
}

// StartIdP makes a signing key and starts serving on addr, which must be
// a loopback address (the demo's tokens grant writes to careflow). The
// issuer ("iss") is http://ADDR, with the port actually bound. It serves
// until ctx ends or Close is called.
func StartIdP(ctx context.Context, addr string) (*IdP, error) {
	if err := loopbackOnly(addr); err != nil {
		return nil, fmt.Errorf("demo: identity provider on %s: %w", addr, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demo: identity provider signing key: %w", err)
	}
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo: identity provider listener: %w", err)
	}
	p := &IdP{key: key, addr: ln.Addr().String(), done: make(chan struct{})}
	p.issuer = "http://" + p.addr
	// The key id is the key's own digest, so a restarted demo's new key
	// is a new kid and careflow refetches the set (keyfunc's unknown-kid
	// refresh) instead of trying the old key.
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("demo: identity provider public key: %w", err)
	}
	sum := sha256.Sum256(pub.Bytes())
	p.kid = base64.RawURLEncoding.EncodeToString(sum[:12])
	p.srv = &http.Server{Handler: p.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln) // ErrServerClosed once Close runs
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.Close()
		case <-p.done:
		}
	}()
	return p, nil
}

// loopbackOnly refuses an address other hosts could reach.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("want a loopback address (127.0.0.1:PORT): the demo's tokens must not be had from another host")
	}
	return nil
}

// Addr is where the identity provider listens (host:port).
func (p *IdP) Addr() string { return p.addr }

// Issuer is the "iss" of its tokens: http://ADDR.
func (p *IdP) Issuer() string { return p.issuer }

// JWKSURL is where its public keys are: http://ADDR/jwks.json.
func (p *IdP) JWKSURL() string { return p.issuer + "/jwks.json" }

// Close stops serving and waits until it has; it may be called more than
// once.
func (p *IdP) Close() error {
	var err error
	p.once.Do(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err = p.srv.Shutdown(sctx); err != nil {
			p.srv.Close()
		}
	})
	<-p.done
	return err
}

// Mint signs a token for sub (DefaultSubject when "") granting scope
// (space-separated), valid for ttl: iss, aud careflow, sub, iat, exp, a
// random jti and scope.
func (p *IdP) Mint(scope, sub string, ttl time.Duration) (string, error) {
	if sub == "" {
		sub = DefaultSubject
	}
	if ttl <= 0 {
		return "", fmt.Errorf("demo: token lifetime %s: want a positive duration", ttl)
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails (Go 1.24+)
	now := time.Now()
	claims := struct {
		jwt.RegisteredClaims
		Scope string `json:"scope"`
	}{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    p.issuer,
			Subject:   sub,
			Audience:  jwt.ClaimStrings{IdPAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		Scope: strings.Join(strings.Fields(scope), " "),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = p.kid
	s, err := t.SignedString(p.key)
	if err != nil {
		return "", fmt.Errorf("demo: sign token: %w", err)
	}
	return s, nil
}

// JWKS is the public JWK Set (RFC 7517): the one P-256 key, with its kid.
func (p *IdP) JWKS() []byte {
	pub, _ := p.key.PublicKey.ECDH() // checked in StartIdP
	b := pub.Bytes()                 // 0x04 || X || Y, 32 bytes each
	set := map[string]any{"keys": []any{map[string]string{
		"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": p.kid,
		"x": base64.RawURLEncoding.EncodeToString(b[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(b[33:65]),
	}}}
	out, _ := json.Marshal(set)
	return out
}

// tokenResponse is RFC 6749 5.1's answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

func (p *IdP) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(p.JWKS())
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			oauthError(w, "invalid_request", "want a form (application/x-www-form-urlencoded) with scope and, optionally, sub")
			return
		}
		if gt := r.PostForm.Get("grant_type"); gt != "" && gt != "client_credentials" {
			oauthError(w, "unsupported_grant_type", "the demo identity provider grants client_credentials only")
			return
		}
		scope := strings.Join(strings.Fields(r.PostForm.Get("scope")), " ")
		if scope == "" {
			oauthError(w, "invalid_scope", "give scope, e.g. scope=careflow/apps.write system/Observation.write")
			return
		}
		sub := r.PostForm.Get("sub")
		if len(sub) > 64 || strings.ContainsFunc(sub, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			oauthError(w, "invalid_request", "sub must be at most 64 printable characters")
			return
		}
		tok, err := p.Mint(scope, sub, tokenTTL)
		if err != nil {
			http.Error(w, "the token could not be signed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(tokenTTL / time.Second), Scope: scope})
	})
	return mux
}

// oauthError answers 400 with RFC 6749 5.2's error document.
func oauthError(w http.ResponseWriter, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// ErrIdPNotRunning means nothing answered at the identity provider's
// address: the demo is not running.
var ErrIdPNotRunning = errors.New("the demo identity provider is not running")

// FetchToken asks the identity provider at addr (host:port) for a token
// granting scope to sub ("" for DefaultSubject), as `careflow demo token`
// does. Nothing listening there is ErrIdPNotRunning.
func FetchToken(ctx context.Context, addr, scope, sub string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	if sub != "" {
		form.Set("sub", sub)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("token request to %s: %w", addr, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// One request, on its own connection: a pooled one to an identity
	// provider since stopped would fail as EOF, not as nothing listening.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return "", fmt.Errorf("%w at %s: start it with `careflow run --demo` (or `careflow demo`)", ErrIdPNotRunning, addr)
		}
		return "", fmt.Errorf("token request to %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return "", fmt.Errorf("identity provider at %s refused: %s (%s)", addr, e.Error, e.Description)
		}
		return "", fmt.Errorf("identity provider at %s answered %s", addr, resp.Status)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("identity provider at %s answered 200 without an access_token", addr)
	}
	return tr.AccessToken, nil
}
