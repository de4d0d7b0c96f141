package analytics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/careflow-health/careflow/analytics"
)

func TestChartsPerStep(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	var e estate
	delivered := func(id, dest string, ingest, at time.Time) {
		e.attempt(id, dest, "delivered", 1, "", "", "", ingest, at)
	}
	delivered("a", "lab", t0, t0.Add(10*time.Second))
	delivered("b", "lab", t0, t0.Add(20*time.Second))
	delivered("c", "lab", t0.Add(149*time.Second), t0.Add(150*time.Second))
	e.attempt("d", "lab", "retrying", 1, "mllp.timeout", "", "", t0, t0.Add(4*time.Minute+time.Second))
	delivered("early", "lab", t0, t0.Add(-time.Second))                                  // before the window
	delivered("late", "lab", t0, t0.Add(5*time.Minute))                                  // at until: outside
	e.attempt("p", "portal", "retrying", 1, "http.503", "", "", t0, t0.Add(time.Minute)) // never delivered
	insertTwice(t, st, &e.Batch)

	since, until := t0, t0.Add(5*time.Minute)
	got, err := st.DeliveredPer(ctx, since, until, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	values := func(s analytics.Series) []float64 {
		var out []float64
		for i, p := range s.Points {
			if !p.At.Equal(since.Add(time.Duration(i) * time.Minute)) {
				t.Errorf("%s point %d at %v; want every step from since", s.Label, i, p.At)
			}
			out = append(out, p.Value)
		}
		return out
	}
	if len(got) != 2 || got[0].Label != "lab" || got[1].Label != "portal" {
		t.Fatalf("DeliveredPer series = %+v; want lab and portal", got)
	}
	if v := values(got[0]); len(v) != 5 || v[0] != 2 || v[1] != 0 || v[2] != 1 || v[3] != 0 || v[4] != 0 {
		t.Errorf("lab delivered per minute = %v; want [2 0 1 0 0]", v)
	}
	if v := values(got[1]); len(v) != 5 || v[0]+v[1]+v[2]+v[3]+v[4] != 0 {
		t.Errorf("portal delivered per minute = %v; want five zeros", v)
	}
	// A window that is not a whole number of steps ends with a part step.
	if part, err := st.DeliveredPer(ctx, since, t0.Add(150*time.Second), 2*time.Minute); err != nil || len(part) == 0 || len(part[0].Points) != 2 {
		t.Errorf("DeliveredPer over 2.5 steps = %+v, %v; want 2 points", part, err)
	}

	lat, err := st.LatencyPer(ctx, since, until, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 2 || lat[0].Label != "lab" || lat[1].Label != "portal" || len(lat[1].Points) != 0 {
		t.Fatalf("LatencyPer = %+v; want lab with points, portal without", lat)
	}
	lab := lat[0].Points
	if len(lab) != 2 || !lab[0].At.Equal(t0) || !lab[1].At.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("lab latency points = %+v; want the first and third minutes only", lab)
	}
	if lab[0].Value <= 15000 || lab[0].Value > 20000 || lab[1].Value != 1000 {
		t.Errorf("lab p95 = %v ms, %v ms; want near the slower of 10s and 20s, then 1000", lab[0].Value, lab[1].Value)
	}

	for _, c := range []struct {
		name         string
		since, until time.Time
		step         time.Duration
	}{
		{"no step", since, until, 0},
		{"empty window", since, since, time.Minute},
		{"backwards", until, since, time.Minute},
		{"too many points", since, since.Add(time.Hour), time.Millisecond},
	} {
		if _, err := st.DeliveredPer(ctx, c.since, c.until, c.step); !errors.Is(err, analytics.ErrBadWindow) {
			t.Errorf("DeliveredPer %s: %v; want ErrBadWindow", c.name, err)
		}
		if _, err := st.LatencyPer(ctx, c.since, c.until, c.step); !errors.Is(err, analytics.ErrBadWindow) {
			t.Errorf("LatencyPer %s: %v; want ErrBadWindow", c.name, err)
		}
	}
}
