package route

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
)

// TestEvalErrorLog: a failing route logs one WARN line a minute with the
// number of failures it did not log, every other failure at DEBUG, each
// route on its own clock, and nothing of the event but careflow's id.
func TestEvalErrorLog(t *testing.T) {
	var logs bytes.Buffer
	now := routeTime
	h := newHarnessWith(t, []Route{
		{Name: "first-order", Destination: "lab", When: `event.orders[0].service_code == "FBC"`},
		{Name: "first-obs", Destination: "portal", When: `event.observations[0].value == "x"`},
	}, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	send := func(ev *avro.ClinicalEvent) {
		t.Helper()
		if _, err := h.stage.Process(context.Background(), h.input(t, ev)); err != nil {
			t.Fatal(err)
		}
	}
	type line struct {
		Level, Msg, Stage, Route, Destination, Error string
		MessageID                                    string `json:"message_id"`
		Suppressed                                   *int
	}
	read := func() []line {
		t.Helper()
		var out []line
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if l == "" {
				continue
			}
			var ln line
			if err := json.Unmarshal([]byte(l), &ln); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			out = append(out, ln)
		}
		logs.Reset()
		return out
	}
	count := func(ls []line, level, route string) (n int, last line) {
		for _, l := range ls {
			if l.Level == level && l.Route == route {
				n, last = n+1, l
			}
		}
		return n, last
	}

	ev := adt("A01") // no orders and no observations: both routes fail
	for range 5 {
		send(ev)
	}
	ls := read()
	for _, r := range []string{"first-order", "first-obs"} {
		n, w := count(ls, "WARN", r)
		if n != 1 || w.Suppressed == nil || *w.Suppressed != 0 {
			t.Fatalf("%s: %d WARN lines (%+v), want one with suppressed=0:\n%+v", r, n, w, ls)
		}
		if d, _ := count(ls, "DEBUG", r); d != 4 {
			t.Errorf("%s: %d DEBUG lines, want 4", r, d)
		}
	}
	_, w := count(ls, "WARN", "first-order")
	if w.Msg != "route condition failed; treated as no match" || w.Stage != "route" || w.Destination != "lab" ||
		w.Error != "index out of bounds" || w.MessageID != ev.EventID {
		t.Errorf("WARN line %+v", w)
	}

	// Within the minute: DEBUG only.
	now = routeTime.Add(59 * time.Second)
	send(ev)
	if n, _ := count(read(), "WARN", "first-order"); n != 0 {
		t.Errorf("%d WARN lines within the minute", n)
	}

	// A minute after the last warning: one more, counting the five since.
	// The event has an observation, so only first-order fails.
	withObs := adt("A01")
	withObs.Observations = []avro.Observation{{Value: "x"}}
	now = routeTime.Add(time.Minute)
	send(withObs)
	ls = read()
	if n, w := count(ls, "WARN", "first-order"); n != 1 || *w.Suppressed != 5 {
		t.Errorf("after a minute: %d WARN lines (%+v), want one with suppressed=5", n, w)
	}
	if n, _ := count(ls, "WARN", "first-obs"); n != 0 {
		t.Error("first-obs logged without failing")
	}

	// Each route on its own clock: a second later first-obs is due (a
	// minute since its warning) and first-order is not.
	now = routeTime.Add(61 * time.Second)
	send(ev)
	ls = read()
	if n, w := count(ls, "WARN", "first-obs"); n != 1 || *w.Suppressed != 5 {
		t.Errorf("first-obs: %d WARN lines (%+v), want one with suppressed=5", n, w)
	}
	if n, _ := count(ls, "WARN", "first-order"); n != 0 {
		t.Error("first-order warned twice within a minute")
	}

	// At INFO nothing but the warnings is written.
	var info bytes.Buffer
	hi := newHarnessWith(t, []Route{{Name: "first-order", Destination: "lab", When: `event.orders[0].service_code == "FBC"`}}, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&info, nil))
	})
	for range 100 {
		if _, err := hi.stage.Process(context.Background(), hi.input(t, ev)); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(info.String(), "\n"); got != 1 {
		t.Errorf("100 failures at INFO wrote %d lines, want 1:\n%s", got, info.String())
	}
	for _, phi := range []string{"Lovelace", "MRN001", "18151210", "Ada"} {
		if strings.Contains(info.String(), phi) {
			t.Errorf("patient data %q in the log", phi)
		}
	}
}
