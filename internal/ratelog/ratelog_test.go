package ratelog

import (
	"strconv"
	"testing"
	"time"
)

// One line per key per interval, the next one carrying the count of those
// suppressed in between.
func TestLimiter(t *testing.T) {
	t0 := time.Now()
	type ev struct {
		at         time.Duration
		key        string
		ok         bool
		suppressed int
	}
	const a, b = "10.0.0.1 evicted", "10.0.0.2 evicted"
	steps := []ev{
		{0, a, true, 0},
		{time.Second, a, false, 0},
		{30 * time.Second, a, false, 0},
		{31 * time.Second, "10.0.0.1 rejected", true, 0}, // another kind
		{32 * time.Second, b, true, 0},                   // another peer
		{59 * time.Second, a, false, 0},
		{61 * time.Second, a, true, 3},
		{62 * time.Second, a, false, 0},
		{10 * time.Minute, a, true, 0}, // forgotten after a quiet spell
	}
	var l Limiter
	for i, s := range steps {
		ok, n := l.Allow(s.key, t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d (%+v): Allow = %v, %d", i, s, ok, n)
		}
	}
}

// However many sources misbehave, the limiter tracks a bounded number of
// keys; those beyond share one key, so they too log a line an interval,
// and quiet ones are forgotten.
func TestLimiterBounded(t *testing.T) {
	t0 := time.Now()
	l := Limiter{MaxKeys: 8}
	logged := 0
	for i := range 1000 {
		if ok, _ := l.Allow("10.1."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256), t0.Add(time.Duration(i)*time.Millisecond)); ok {
			logged++
		}
	}
	if n := l.Size(); n > 9 {
		t.Fatalf("%d keys tracked, want at most 9 (8 and the pooled one)", n)
	}
	if logged != 9 {
		t.Fatalf("%d lines for 1000 sources in one interval, want 9", logged)
	}
	if ok, _ := l.Allow("10.9.9.9", t0.Add(time.Hour)); !ok {
		t.Fatal("a new source after an hour is not logged")
	}
	if n := l.Size(); n != 1 {
		t.Fatalf("%d keys tracked after an hour, want the old ones forgotten", n)
	}
}
