package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/browser"
	"github.com/careflow-health/careflow/internal/console"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/peer"
	"github.com/careflow-health/careflow/stages/replay"
	"github.com/careflow-health/careflow/stages/sink"
)

// consoleRig is an engine with its console, ClickHouse behind it, and a
// lab that can be down, answer AE, or accept.
type consoleRig struct {
	eng       *engine.Engine
	base      string // http://admin/console/
	chromium  string
	store     *analytics.Store
	fe        faultEstate
	lab       *faultLab
	rejecting atomic.Bool
	accepted  atomic.Int32 // frames the lab answered AA
}

var consolePasswords = map[string]string{
	"admin": "admin-password-for-tests", "operator": "operator-password-for-tests", "viewer": "viewer-password-for-tests",
}

func startConsoleRig(t *testing.T) *consoleRig {
	t.Helper()
	path, err := browser.Path()
	if err != nil {
		peer.Missing(t, err.Error())
	}
	ch := chtest.Start(t)
	r := &consoleRig{chromium: path, fe: newFaultEstate(t)}
	r.fe.OpenFor = "3s"
	cfg := r.fe.config(t)
	users := filepath.Join(t.TempDir(), "console-users")
	for name, pw := range consolePasswords {
		if err := console.SetUser(users, name, name, pw); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Console.UsersFile = users
	cfg.Analytics.ClickHouse.DSN = ch.DSN("careflow")
	cfg.Analytics.BatchInterval = 100 * time.Millisecond
	r.eng = startEngine(t, cfg, t.TempDir())
	r.base = "http://" + r.eng.AdminAddr() + console.Prefix
	if r.store, err = analytics.Open(context.Background(), ch.DSN("careflow")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	return r
}

// startLab brings the lab up; it answers AE while rejecting is set.
func (r *consoleRig) startLab(t *testing.T) {
	r.lab = startFaultLab(t, r.fe.Lab, func(_ int, _ *hl7v2.Message) labAnswer {
		if r.rejecting.Load() {
			return labAnswer{Code: hl7v2.AckAE}
		}
		r.accepted.Add(1)
		return labAnswer{}
	})
}

// tab is a browser tab logged in as user ("" for none).
func (r *consoleRig) tab(t *testing.T, user string) context.Context {
	t.Helper()
	ctx, cancel := browser.New(context.Background(), r.chromium)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelT)
	if user == "" {
		return ctx
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(r.base+"login"),
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), consolePasswords[user]),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("who")),
	); err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
	who, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("who")))
	if err != nil || !strings.Contains(who, user) {
		t.Fatalf("logged in as %q (%v), want %s", who, err, user)
	}
	return ctx
}

// present reports whether the page has an element matching css.
func present(ctx context.Context, css string) (bool, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.querySelector(%q) !== null", css)))
}

// reloadUntil loads url until it has an element matching css: the sink,
// the breaker and the metrics get there in their own time.
func reloadUntil(t *testing.T, ctx context.Context, url, css string, within time.Duration) {
	t.Helper()
	await.For(t, within, time.Second, func() error {
		if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
			return err
		}
		ok, err := present(ctx, css)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s has no %s yet", url, css)
		}
		return nil
	})
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return s
}

// TestConsoleInBrowser drives the console in headless Chromium through
// what an operator does: a logged-out request is sent to the login; the
// estate shows the lab's breaker open while the lab is down; a message is
// found by its sender's control id and shows its journey and ACKs; a dead
// letter is replayed from the console and reaches the lab once, and a
// second replay is refused; a viewer can neither replay nor see patient
// data.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ClickHouse and Chromium")
	}
	r := startConsoleRig(t)
	ehr := &mllp.Client{Addr: r.fe.EHR}
	defer ehr.Close()

	t.Run("logged out is redirected to the login", func(t *testing.T) {
		ctx := r.tab(t, "")
		loc, err := chromedp.Run(ctx, func(ctx context.Context, _ *chromedp.Target) (string, error) {
			if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"messages?q=x"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
				return "", err
			}
			return chromedp.Run(ctx, chromedp.Location())
		})
		if err != nil || !strings.HasPrefix(loc, r.base+"login?next=%2Fconsole%2Fmessages") {
			t.Fatalf("logged-out request ended at %q (%v), want the login with next", loc, err)
		}
		// htmx's refreshes are told where to go rather than being sent
		// the login page to swap into the estate.
		req, _ := http.NewRequest("GET", r.base+"estate/live", nil)
		req.Header.Set("HX-Request", "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("HX-Redirect"), console.Prefix+"login") {
			t.Fatalf("logged-out htmx refresh: %d, HX-Redirect %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
		}
		// A wrong password is refused on the login page.
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("user"), "operator"),
			chromedp.SendKeys(chromedp.ID("password"), "not-the-password"), chromedp.Click(chromedp.ID("login")),
			chromedp.WaitVisible(chromedp.ID("login-error"))); err != nil {
			t.Fatalf("wrong password: %v", err)
		}
	})

	parent := t
	t.Run("the estate shows the breaker open while the lab is down", func(t *testing.T) {
		ctx := r.tab(t, "viewer")
		faultSend(t, ehr, adt("A01", "CON1", "CON-1"), "AA") // the lab is not listening
		reloadUntil(t, ctx, r.base, `tr[data-destination="lab"] [data-breaker="open"]`, 60*time.Second)
		r.startLab(parent) // it outlives this subtest
		reloadUntil(t, ctx, r.base, `tr[data-destination="lab"] [data-breaker="closed"]`, 60*time.Second)
		await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
			if n := r.accepted.Load(); n != 1 {
				return fmt.Errorf("the lab has accepted %d, want CON-1 once", n)
			}
			return nil
		})
	})
	if r.lab == nil {
		t.Fatal("the lab never started")
	}

	var messageID string
	t.Run("find a message by the sender's control id and see its journey and ACKs", func(t *testing.T) {
		ctx := r.tab(t, "operator")
		await.For(t, 60*time.Second, time.Second, func() error {
			if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"messages")); err != nil {
				return err
			}
			if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("q"), "CON-1"), chromedp.Click(chromedp.ID("search")),
				chromedp.WaitVisible(chromedp.CSS(`#results table, #no-results`))); err != nil {
				return err
			}
			if ok, err := present(ctx, `#messages tr[data-message]`); err != nil || !ok {
				return fmt.Errorf("no result for CON-1 yet (%v)", err)
			}
			return nil
		})
		id, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#messages tr[data-message]`), "data-message"))
		if err != nil || !id.Exists {
			t.Fatalf("result row: %v %v", id, err)
		}
		messageID = id.Value
		href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#messages tr[data-message] a`), "href"))
		if err != nil || href.Value != console.Prefix+"messages/"+messageID {
			t.Fatalf("the result links to %q (%v)", href.Value, err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"messages/"+messageID), chromedp.WaitVisible(chromedp.ID("journey"))); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#control-id"); got != "CON-1" {
			t.Fatalf("control id on the page %q", got)
		}
		// The delivered step and the lab's AA reach ClickHouse shortly
		// after the lab answers.
		reloadUntil(t, ctx, r.base+"messages/"+messageID, `#journey tr[data-stage="deliver"][data-status="delivered"]`, 60*time.Second)
		for _, css := range []string{
			`#journey tr[data-stage="ingest"][data-status="accepted"]`,
			`#journey tr[data-stage="normalise"]`,
			`#journey tr[data-stage="route"][data-status="routed"]`,
			`#journey tr[data-status="retrying"]`, // while the lab was down
			`#acks tr[data-ack="sender"]`,
		} {
			if ok, err := present(ctx, css); err != nil || !ok {
				t.Errorf("the message page has no %s (%v)", css, err)
			}
		}
		var labAA bool
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#acks tr[data-ack="lab"]')].map(r => r.textContent)`))
		for _, row := range rows {
			labAA = labAA || (strings.Contains(row, "AA") && strings.Contains(row, "business") && strings.Contains(row, "delivered"))
		}
		if err != nil || !labAA {
			t.Errorf("no ACK row shows the lab's AA: %q (%v)", rows, err)
		}
		forms := text(t, ctx, `main`)
		for _, want := range []string{"Raw, as received", `MSH|^~\&|EHR|HOSP`, "Canonical", "Rendered for lab", "NHSCON1"} {
			if !strings.Contains(forms, want) {
				t.Errorf("an operator sees no %q on the message page", want)
			}
		}
		// An operator may search by the patient's identifier, as the
		// interface keys patients (value^authority).
		var key string
		for _, id := range []string{"NHSCON1^NHS", "CON1^HOSP"} {
			if ms, err := r.store.Messages(context.Background(), analytics.MessageQuery{Text: "CON-1"}); err == nil && len(ms) == 1 && ms[0].PatientHash == sink.PatientHash([]byte(id)) {
				key = id
			}
		}
		if key == "" {
			t.Fatal("CON-1 is keyed by neither of its identifiers")
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"messages?since=1h&patient="+url.QueryEscape(key)),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#messages tr[data-message=%q]`, messageID)))); err != nil {
			t.Fatalf("search by patient %s: %v", key, err)
		}
		// Seeing patient data is audited, with who.
		await.For(t, 30*time.Second, 200*time.Millisecond, func() error {
			rows, err := r.store.AuditTrail(context.Background(), analytics.ListQuery{Since: time.Now().Add(-time.Hour), Code: console.TypePatientDataViewed})
			if err != nil {
				return err
			}
			for _, a := range rows {
				if a.AgentWho == "operator" && a.EntityWhat == messageID {
					return nil
				}
			}
			return fmt.Errorf("no audit record of operator viewing %s: %+v", messageID, rows)
		})
	})

	t.Run("replay a dead letter from the console: delivered once", func(t *testing.T) {
		r.rejecting.Store(true)
		faultSend(t, ehr, adt("A01", "CON2", "CON-2"), "AA")
		opts := []kgo.Opt{kgo.SeedBrokers(r.eng.Brokers()...)}
		var letter replay.Letter
		await.For(t, 30*time.Second, 100*time.Millisecond, func() error {
			ls, err := replay.List(context.Background(), opts, r.eng.Serde(), replay.Filter{Destination: "lab", NotReplayed: true})
			if err != nil {
				return err
			}
			if len(ls) != 1 {
				return fmt.Errorf("%d dead letters for the lab, want CON-2's", len(ls))
			}
			letter = ls[0]
			return nil
		})
		r.rejecting.Store(false)
		before := r.accepted.Load()
		ctx := r.tab(t, "operator")
		if err := chromedp.Do(ctx,
			chromedp.Navigate(r.base+"deadletters?destination=lab"),
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="id"][value=%q]`, letter.ID))),
			chromedp.SendKeys(chromedp.CSS(`#replay-form input[name="reason"]`), "the lab fixed its AE"),
			chromedp.Click(chromedp.ID("replay")),
			chromedp.WaitVisible(chromedp.ID("flash")),
		); err != nil {
			t.Fatal(err)
		}
		if got := text(t, ctx, "#flash"); !strings.Contains(got, "replayed "+letter.ID) {
			t.Fatalf("after replay the page says %q", got)
		}
		await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
			if n := r.accepted.Load() - before; n != 1 {
				return fmt.Errorf("the lab has accepted %d since the replay, want CON-2 once", n)
			}
			return nil
		})
		// Again from the letter's own page: refused, nothing sent.
		if err := chromedp.Do(ctx,
			chromedp.Navigate(r.base+"deadletters/"+letter.ID),
			chromedp.SendKeys(chromedp.CSS(`input[name="reason"]`), "once more"),
			chromedp.Click(chromedp.ID("replay")),
			chromedp.WaitVisible(chromedp.ID("flash")),
		); err != nil {
			t.Fatal(err)
		}
		// The original (a canonical event on careflow.out.lab) is shown
		// decoded, not as Avro bytes.
		if orig := text(t, ctx, "#original"); !strings.Contains(orig, `"message_type": "ADT"`) || !strings.Contains(orig, `"value": "CON2"`) {
			t.Errorf("the dead letter's original on its page:\n%s", orig)
		}
		if got := text(t, ctx, "#flash"); !strings.Contains(got, "refused "+letter.ID) {
			t.Fatalf("a second replay says %q, want it refused", got)
		}
		got, err := replay.Get(context.Background(), opts, r.eng.Serde(), letter.ID)
		if err != nil || len(got.Replays) != 1 || got.Replays[0].By != "operator" || got.Replays[0].Reason != "the lab fixed its AE" {
			t.Fatalf("replays of %s: %+v, %v; want one, by operator, with the reason", letter.ID, got, err)
		}
		time.Sleep(time.Second) // a second send would have reached the lab by now
		if n := r.accepted.Load() - before; n != 1 {
			t.Fatalf("the lab has accepted %d since the first replay, want 1", n)
		}
	})

	t.Run("a viewer can neither replay nor see identifiers", func(t *testing.T) {
		if messageID == "" {
			t.Skip("no message found earlier")
		}
		ctx := r.tab(t, "viewer")
		if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"messages/"+messageID), chromedp.WaitVisible(chromedp.ID("journey"))); err != nil {
			t.Fatal(err)
		}
		page := text(t, ctx, "body")
		for _, secret := range []string{"CON1", "DOE", "19800101", "LEEDS", "MSH|"} {
			if strings.Contains(page, secret) {
				t.Errorf("a viewer sees %q on the message page", secret)
			}
		}
		if ok, _ := present(ctx, "#forms-hidden"); !ok {
			t.Error("the viewer's message page does not say the forms are hidden")
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(r.base+"deadletters?destination=lab&all=1"), chromedp.WaitVisible(chromedp.ID("letters"))); err != nil {
			t.Fatal(err)
		}
		if ok, _ := present(ctx, `#replay, input[name="id"]`); ok {
			t.Error("a viewer is offered a replay")
		}
		if ok, _ := present(ctx, `input[name="patient"]`); ok {
			t.Error("a viewer is offered the patient search")
		}
		// Posting the replay anyway, with the viewer's own session and
		// CSRF token, is refused.
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(async () => {
			const h = JSON.parse(document.body.getAttribute("hx-headers"));
			const id = document.querySelector("tr[data-letter]").dataset.letter;
			const r = await fetch("/console/deadletters/replay", {method: "POST", headers: {"X-CSRF-Token": h["X-CSRF-Token"],
				"Content-Type": "application/x-www-form-urlencoded"}, body: "id=" + encodeURIComponent(id) + "&reason=viewer&again=1"});
			return r.status;
		})()`, chromedp.EvalAwaitPromise))
		if err != nil || status != http.StatusForbidden {
			t.Fatalf("a viewer's replay post: %d (%v), want 403", status, err)
		}
		status, err = chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/console/messages?patient=CON1%5EHOSP").then(r => r.status)`, chromedp.EvalAwaitPromise))
		if err != nil || status != http.StatusForbidden {
			t.Fatalf("a viewer's patient search: %d (%v), want 403", status, err)
		}
		href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`tr[data-letter] a`), "href"))
		if err != nil || !href.Exists {
			t.Fatalf("no dead letter link: %v", err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+r.eng.AdminAddr()+href.Value), chromedp.WaitVisible(chromedp.ID("original-hidden"))); err != nil {
			t.Fatalf("a viewer's dead letter page: %v", err)
		}
		if ok, _ := present(ctx, `#original, #replay`); ok {
			t.Error("a viewer sees a dead letter's original or its replay button")
		}
	})
}

// A users file the console cannot use stops the engine at start, naming
// the line, rather than serving a console nobody can log in to.
func TestConsoleRefusesABrokenUsersFile(t *testing.T) {
	fe := newFaultEstate(t)
	cfg := fe.config(t)
	cfg.Console.UsersFile = filepath.Join(t.TempDir(), "console-users")
	if err := os.WriteFile(cfg.Console.UsersFile, []byte("ann operator plain-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Start(context.Background(), engine.Options{Config: cfg, DataDir: t.TempDir(), EmbeddedPort: -1})
	if err == nil {
		eng.Stop()
		t.Fatal("the engine started with a broken users file")
	}
	if !strings.Contains(err.Error(), "line 1: user ann: the third field is not a bcrypt hash") {
		t.Fatalf("error %v, want the line and user named", err)
	}
}
