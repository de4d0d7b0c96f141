package console

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/stages/audit"
)

// cookieName holds the session token. The token is random and means
// nothing outside this process: a restart logs everyone out, which a
// console can afford and which keeps no session secret on disk.
const cookieName = "careflow_console"

// session is one login.
type session struct {
	User    string
	Role    string
	CSRF    string // every form and htmx post carries it
	flash   string // the last action's result, shown on the next page
	expires time.Time
	ends    time.Time // however busy: a login lasts no longer than this
}

// maxSession bounds a login however often it is used (at least the
// session length): a console left open on a shared computer is not
// logged in for ever.
const maxSession = 24 * time.Hour

type sessions struct {
	mu  sync.Mutex
	ttl time.Duration
	now func() time.Time
	m   map[string]*session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	if ttl <= 0 {
		ttl = 8 * time.Hour
	}
	return &sessions{ttl: ttl, now: now, m: map[string]*session{}}
}

func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) start(u User) (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := token()
	now := s.now()
	x := &session{User: u.Name, Role: u.Role, CSRF: token(), expires: now.Add(s.ttl), ends: now.Add(max(s.ttl, maxSession))}
	s.m[t] = x
	return t, x
}

// get returns the live session of token t; extend counts the request as
// use (a person's, not a page refreshing itself).
func (s *sessions) get(t string, extend bool) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.m[t]
	if !ok {
		return nil
	}
	now := s.now()
	if now.After(x.expires) || now.After(x.ends) {
		delete(s.m, t)
		return nil
	}
	if extend {
		x.expires = now.Add(s.ttl)
	}
	cp := *x
	return &cp
}

func (s *sessions) end(t string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, t)
}

func (s *sessions) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for t, x := range s.m {
		if now.After(x.expires) || now.After(x.ends) {
			delete(s.m, t)
		}
	}
}

// rank orders the roles: a page open to a role is open to those above it.
func rank(role string) int { return slices.Index(config.Roles, role) }

type sessionKey struct{}

// sessionOf is the request's session; authed guarantees one.
func sessionOf(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// authed serves h to sessions of role least or above. Without a session a
// page is redirected to the login (htmx is told to go there itself, since
// it would otherwise swap the login page into a fragment); a lower role
// is refused 403; a post without the session's CSRF token is refused 403.
func (c *Console) authed(least string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *session
		htmx := r.Header.Get("HX-Request") != ""
		if ck, err := r.Cookie(cookieName); err == nil {
			// htmx's timed refreshes (hx-trigger="every …") are not a
			// person using the console.
			s = c.sessions.get(ck.Value, !(htmx && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/live")))
		}
		if s == nil {
			next := r.URL.RequestURI()
			if htmx {
				// Back to the page, not to the fragment it was refreshing.
				if u, err := url.Parse(r.Header.Get("HX-Current-URL")); err == nil && u.Path != "" {
					next = u.RequestURI()
				}
			}
			login := Prefix + "login?next=" + url.QueryEscape(safeNext(next))
			if htmx {
				w.Header().Set("HX-Redirect", login)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, login, http.StatusSeeOther)
			return
		}
		if rank(s.Role) < rank(least) {
			c.fail(w, r, s, http.StatusForbidden, errors.New("your role ("+s.Role+") may not do this: it needs "+least))
			return
		}
		if r.Method == http.MethodPost {
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf")
			}
			if !sameString(got, s.CSRF) {
				c.fail(w, r, s, http.StatusForbidden, errors.New("this form is out of date (no or an old CSRF token): reload the page and try again"))
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, nil, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	name, password := r.PostFormValue("user"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	host := remoteHost(r)
	if wait := c.logins.blocked(host); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		c.renderBlock(w, nil, "login", "layout.html", http.StatusTooManyRequests,
			map[string]any{"Next": next, "Error": "Too many wrong logins from this address: try again in " + ago(wait) + "."})
		return
	}
	u, err := c.checkLogin(r.Context(), name, password)
	if err != nil {
		c.logins.failed(host)
		// An unknown name is often a password typed in the wrong box: it
		// is not recorded.
		who, reason := name, "wrong password"
		if !c.cfg.Users.Known(name) {
			who, reason = "", "unknown user name"
		}
		c.cfg.Audit.Refused(audit.Refusal{Type: TypeLoginRefused, AgentType: audit.AgentUser, AgentWho: who, AgentNetwork: host,
			EntityType: EntityConsole, EntityWhat: "login", Reason: reason})
		c.renderBlock(w, nil, "login", "layout.html", http.StatusUnauthorized, map[string]any{"Next": next, "Error": "Wrong user name or password."})
		return
	}
	c.logins.succeeded(host)
	t, s := c.sessions.start(u)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: t, Path: Prefix, HttpOnly: true,
		Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode})
	c.record(r, s, TypeLogin, avro.AuditExecute, EntityConsole, "login", "role "+s.Role)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.sessions.end(ck.Value)
	}
	c.record(r, sessionOf(r), TypeLogout, avro.AuditExecute, EntityConsole, "logout", "")
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix
	}
	return next
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// Audit record types and entities the console writes (replays are
// recorded by stages/replay, in the replay's own transaction).
const (
	TypeLogin             = "console_login"
	TypeLoginRefused      = "console_login_refused"
	TypeLogout            = "console_logout"
	TypePatientDataViewed = "patient_data_viewed"
	TypeReviewDecided     = "review_decided"

	EntityConsole = "console"
	EntityMessage = "message"
	EntityReview  = "review"
)

// record writes one audit record of what s did.
func (c *Console) record(r *http.Request, s *session, typ, action, entity, what, detail string) {
	ev := avro.AuditEvent{
		Recorded: c.cfg.Now().UTC(), Type: typ, Action: action, Outcome: avro.AuditSuccess,
		AgentType: audit.AgentUser, AgentNetwork: remoteHost(r), SourceObserver: c.cfg.Observer,
		EntityType: entity, EntityWhat: what, EntityDetail: detail,
	}
	if s != nil {
		ev.AgentWho = s.User
	}
	c.cfg.Audit.Record(ev)
}

// flash keeps msg for the next page the session sees: the result of a
// post, shown after its redirect (not in the URL, where anyone could
// write one).
func (c *Console) flash(r *http.Request, msg string) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return
	}
	c.sessions.mu.Lock()
	defer c.sessions.mu.Unlock()
	if x, ok := c.sessions.m[ck.Value]; ok {
		x.flash = msg
	}
}

func (c *Console) popFlash(r *http.Request) string {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return ""
	}
	c.sessions.mu.Lock()
	defer c.sessions.mu.Unlock()
	x, ok := c.sessions.m[ck.Value]
	if !ok {
		return ""
	}
	msg := x.flash
	x.flash = ""
	return msg
}

// Wrong logins from one address: after loginFailures within loginWindow,
// that address waits out the window. bcrypt is slow by design, so at most
// loginChecks run at once: a flood of logins cannot take the CPU from the
// stages sharing the process.
const (
	loginFailures = 5
	loginWindow   = 5 * time.Minute
	loginChecks   = 2
)

type loginGuard struct {
	mu    sync.Mutex
	now   func() time.Time
	fails map[string][]time.Time
	slots chan struct{}
}

func newLoginGuard(now func() time.Time) *loginGuard {
	return &loginGuard{now: now, fails: map[string][]time.Time{}, slots: make(chan struct{}, loginChecks)}
}

// recent keeps host's failures within the window; call with mu held.
func (g *loginGuard) recent(host string) []time.Time {
	now := g.now()
	fs := g.fails[host]
	for len(fs) > 0 && now.Sub(fs[0]) > loginWindow {
		fs = fs[1:]
	}
	if len(fs) == 0 {
		delete(g.fails, host)
		return nil
	}
	g.fails[host] = fs
	return fs
}

// blocked is how long host must wait before trying again; 0: it may.
func (g *loginGuard) blocked(host string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	fs := g.recent(host)
	if len(fs) < loginFailures {
		return 0
	}
	return loginWindow - g.now().Sub(fs[len(fs)-loginFailures])
}

func (g *loginGuard) failed(host string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fails[host] = append(g.recent(host), g.now())
}

func (g *loginGuard) succeeded(host string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.fails, host)
}

// checkLogin checks a password in one of the bcrypt slots.
func (c *Console) checkLogin(ctx context.Context, name, password string) (User, error) {
	select {
	case c.logins.slots <- struct{}{}:
	case <-ctx.Done():
		return User{}, ctx.Err()
	}
	defer func() { <-c.logins.slots }()
	return c.cfg.Users.Check(name, password)
}
