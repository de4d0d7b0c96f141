package console

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/config"
)

// clock is a settable time for session expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestConsole serves a console (no Kafka, no ClickHouse: the pages
// tested here need neither) with a viewer and an admin.
func newTestConsole(t *testing.T) (*httptest.Server, *clock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	for _, u := range []string{"viewer", "admin"} {
		if err := SetUser(path, u, u, u+" password here"); err != nil {
			t.Fatal(err)
		}
	}
	users, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.Console.UsersFile = path
	clk := &clock{t: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	c, err := New(Config{Estate: &cfg, Users: users, Serde: serde, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix, c.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, clk
}

// client does not follow redirects, so tests see where they point.
func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func login(t *testing.T, srv *httptest.Server, c *http.Client, user, next string) *http.Response {
	t.Helper()
	resp, _ := do(t, c, "POST", srv.URL+Prefix+"login", url.Values{"user": {user}, "password": {user + " password here"}, "next": {next}})
	return resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestLoginSessionsAndRoles(t *testing.T) {
	srv, clk := newTestConsole(t)
	c := client(t)

	resp, _ := do(t, c, "GET", srv.URL+Prefix+"users", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != Prefix+"login?next=%2Fconsole%2Fusers" {
		t.Fatalf("logged out: %d to %q, want the login with next", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do(t, c, "POST", srv.URL+Prefix+"login", url.Values{"user": {"admin"}, "password": {"wrong"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password.") || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong password: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	// A login may only lead back into the console.
	for next, want := range map[string]string{Prefix + "users": Prefix + "users", "//evil.example/": Prefix, "https://evil.example/": Prefix, Prefix + `\\evil`: Prefix} {
		resp = login(t, srv, client(t), "admin", next)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("login with next %q went to %q, want %q", next, resp.Header.Get("Location"), want)
		}
	}
	resp = login(t, srv, c, "viewer", "")
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != Prefix {
		t.Fatalf("session cookie %+v, want HttpOnly, SameSite=Strict, on the console only", ck)
	}
	if resp, body := do(t, c, "GET", srv.URL+Prefix+"users", nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "it needs admin") {
		t.Fatalf("a viewer on the users page: %d", resp.StatusCode)
	}
	if resp, body := do(t, c, "GET", srv.URL+Prefix+"charts", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "needs ClickHouse") ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("a viewer on the charts page without ClickHouse: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	// A post without the session's CSRF token is refused.
	if resp, _ := do(t, c, "POST", srv.URL+Prefix+"logout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without CSRF: %d, want 403", resp.StatusCode)
	}
	if resp, _ := do(t, c, "POST", srv.URL+Prefix+"deadletters/replay", url.Values{"id": {"route:0:1"}, "reason": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a viewer's replay: %d, want 403", resp.StatusCode)
	}
	// Idle past the session's length: logged out.
	clk.add(9 * time.Hour)
	if resp, _ := do(t, c, "GET", srv.URL+Prefix+"charts", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after 9 idle hours: %d, want the login", resp.StatusCode)
	}

	admin := client(t)
	login(t, srv, admin, "admin", "")
	_, body = do(t, admin, "GET", srv.URL+Prefix+"users", nil)
	if !strings.Contains(body, "<td>viewer</td><td>viewer</td><td>no</td>") || !strings.Contains(body, "<td>admin</td><td>admin</td><td>yes (audited)</td>") {
		t.Fatalf("users page:\n%s", body)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	if resp, _ := do(t, admin, "POST", srv.URL+Prefix+"logout", url.Values{"csrf": {m[1]}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := do(t, admin, "GET", srv.URL+Prefix+"users", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d, want the login", resp.StatusCode)
	}
}

func TestStaticHTMXIsEmbedded(t *testing.T) {
	srv, _ := newTestConsole(t)
	resp, body := do(t, client(t), "GET", srv.URL+Prefix+"static/htmx.min.js", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "htmx") || !strings.Contains(body, `version:"2.0.11"`) {
		t.Fatalf("htmx: %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestFeeds(t *testing.T) {
	names := []string{"ehr", "lab-results"}
	for _, tc := range []struct {
		when string
		want map[string]bool
	}{
		{`event.message_type == "ADT"`, map[string]bool{"ehr": true, "lab-results": true}},
		{`event.provenance.source_interface == "lab-results"`, map[string]bool{"ehr": false, "lab-results": true}},
		{`event.provenance.source_interface in ['ehr']`, map[string]bool{"ehr": true, "lab-results": false}},
	} {
		for n, want := range tc.want {
			if got := feeds(config.Route{When: tc.when}, names, n); got != want {
				t.Errorf("feeds(%q, %s) = %v", tc.when, n, got)
			}
		}
	}
}

func TestChartsEscapeAndScale(t *testing.T) {
	since := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	svg := string(lineChart("t", "", []analytics.Series{{Label: `<script>x</script>`, Points: []analytics.Point{{At: since, Value: 3}, {At: since.Add(time.Minute), Value: 7}}}}, since, since.Add(2*time.Minute)))
	if strings.Contains(svg, "<script>") || !strings.Contains(svg, "&lt;script&gt;") || !strings.Contains(svg, "<polyline") {
		t.Fatalf("line chart:\n%s", svg)
	}
	for v, want := range map[float64]float64{0: 1, 0.3: 0.5, 7: 10, 12: 20, 450: 500, 1000: 1000} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
	bar := string(barChart("codes", []analytics.CodeCount{{Stage: "validate", Code: "hl7.101", Count: 4}}))
	if !strings.Contains(bar, "validate · hl7.101") || !strings.Contains(bar, ">4</text>") {
		t.Fatalf("bar chart:\n%s", bar)
	}
}

func TestSessionsEndWhileThePageRefreshes(t *testing.T) {
	srv, clk := newTestConsole(t)
	c := client(t)
	login(t, srv, c, "viewer", "")
	poll := func() *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+Prefix+"estate/live", nil)
		req.Header.Set("HX-Request", "true")
		req.Header.Set("HX-Current-URL", srv.URL+Prefix+"?x=1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// The estate refreshing itself every few minutes for 9 hours does not
	// keep an 8-hour login alive.
	for range 9 * 12 {
		clk.add(5 * time.Minute)
		if resp := poll(); resp.StatusCode != http.StatusOK {
			if clk.now().Sub(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)) < 8*time.Hour {
				t.Fatalf("logged out after %v of refreshes", clk.now().Sub(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)))
			}
			// Sent to log in, and back to the page, not to the fragment.
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") != Prefix+"login?next=%2Fconsole%2F%3Fx%3D1" {
				t.Fatalf("expired refresh: %d, HX-Redirect %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
			}
			break
		}
	}
	if resp := poll(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after 9 hours of refreshes alone: %d, want logged out", resp.StatusCode)
	}
	// In use every hour, a login still ends after a day.
	c = client(t)
	login(t, srv, c, "viewer", "")
	for h := 1; h <= 25; h++ {
		clk.add(time.Hour)
		resp, _ := do(t, c, "GET", srv.URL+Prefix+"charts", nil)
		if want := h <= 24; (resp.StatusCode == http.StatusOK) != want {
			t.Fatalf("hour %d of use: %d", h, resp.StatusCode)
		}
	}
}

func TestWrongLoginsAreThrottled(t *testing.T) {
	srv, clk := newTestConsole(t)
	c := client(t)
	for i := range loginFailures {
		resp, _ := do(t, c, "POST", srv.URL+Prefix+"login", url.Values{"user": {"admin"}, "password": {"guess " + string(rune('a'+i))}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong login %d: %d", i+1, resp.StatusCode)
		}
	}
	// Now even the right password waits: the guesser cannot tell.
	if resp := login(t, srv, c, "admin", ""); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after %d wrong logins: %d, want 429 with Retry-After", loginFailures, resp.StatusCode)
	}
	clk.add(loginWindow + time.Second)
	if resp := login(t, srv, c, "admin", ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window: %d, want logged in", resp.StatusCode)
	}
}

// The role is checked on the server whatever the page offered: a viewer
// with a valid CSRF token is refused; an operator's post with the token in
// htmx's header gets through to the replay (which then wants letters).
func TestPostsNeedTheRoleAndTheToken(t *testing.T) {
	srv, _ := newTestConsole(t)
	token := func(c *http.Client) string {
		_, body := do(t, c, "GET", srv.URL+Prefix+"charts", nil)
		m := csrfField.FindStringSubmatch(body)
		if m == nil {
			t.Fatal("no CSRF token on the page")
		}
		return m[1]
	}
	viewer := client(t)
	login(t, srv, viewer, "viewer", "")
	if resp, body := do(t, viewer, "POST", srv.URL+Prefix+"deadletters/replay", url.Values{"csrf": {token(viewer)}, "id": {"route:0:1"}, "reason": {"x"}}); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "it needs operator") {
		t.Fatalf("a viewer's replay with a valid token: %d", resp.StatusCode)
	}
	admin := client(t)
	login(t, srv, admin, "admin", "")
	req, _ := http.NewRequest("POST", srv.URL+Prefix+"deadletters/replay", strings.NewReader("reason=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", token(admin))
	resp, err := admin.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "tick the dead letters") {
		t.Fatalf("an admin's replay with the header token and no letters: %d %s", resp.StatusCode, b)
	}
}
