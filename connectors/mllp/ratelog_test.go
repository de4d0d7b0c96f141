package mllp

import (
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"
)

// One line per (peer, kind) per interval, the next one carrying the count
// of those suppressed in between.
func TestLogLimiter(t *testing.T) {
	t0 := time.Now()
	type ev struct {
		at         time.Duration
		peer       string
		kind       ConnState
		ok         bool
		suppressed int
	}
	const a, b = "10.0.0.1", "10.0.0.2"
	steps := []ev{
		{0, a, StateEvicted, true, 0},
		{time.Second, a, StateEvicted, false, 0},
		{30 * time.Second, a, StateEvicted, false, 0},
		{31 * time.Second, a, StateRejected, true, 0}, // another kind
		{32 * time.Second, b, StateEvicted, true, 0},  // another peer
		{59 * time.Second, a, StateEvicted, false, 0},
		{61 * time.Second, a, StateEvicted, true, 3},
		{62 * time.Second, a, StateEvicted, false, 0},
		{10 * time.Minute, a, StateEvicted, true, 0}, // forgotten after a quiet spell
	}
	var l logLimiter
	for i, s := range steps {
		ok, n := l.allow(s.peer, s.kind, t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Fatalf("step %d (%+v): allow = %v, %d", i, s, ok, n)
		}
	}
}

// However many peers misbehave, the limiter tracks a bounded number of
// keys; the peers beyond share one key, so they too log a line an
// interval, and quiet peers are forgotten.
func TestLogLimiterBounded(t *testing.T) {
	t0 := time.Now()
	l := logLimiter{max: 8}
	logged := 0
	for i := range 1000 {
		if ok, _ := l.allow("10.1."+strconv.Itoa(i/256)+"."+strconv.Itoa(i%256), StateRejected, t0.Add(time.Duration(i)*time.Millisecond)); ok {
			logged++
		}
	}
	if n := l.size(); n > 9 {
		t.Fatalf("%d keys tracked, want at most 9 (8 and the pooled one)", n)
	}
	if logged != 9 {
		t.Fatalf("%d lines for 1000 peers in one interval, want 9", logged)
	}
	if ok, _ := l.allow("10.9.9.9", StateRejected, t0.Add(time.Hour)); !ok {
		t.Fatal("a new peer after an hour is not logged")
	}
	if n := l.size(); n != 1 {
		t.Fatalf("%d keys tracked after an hour, want the old ones forgotten", n)
	}
}

// A burst of evictions from one peer is reported on every connection to
// ConnState but logged once.
func TestServerLogsEvictionsOncePerMinute(t *testing.T) {
	ev := newEvents()
	logs := newLogCapture()
	s := &Server{Handler: echo, MaxConnectionsPerPeer: 1, ConnState: ev.hook, Logger: slog.New(logs)}
	addr := startServer(t, s)
	const n = 10
	for i := range n + 1 {
		c := dial(t, addr)
		waitServed(t, s, c) // each newcomer evicts the one before
		if i > 0 {
			ev.waitCount(t, StateEvicted, i)
		}
	}
	ev.waitCount(t, StateClosed, n)
	if got := ev.count(StateEvicted); got != n {
		t.Fatalf("%d evictions reported, want %d", got, n)
	}
	lines := logs.matching(StateEvicted)
	if len(lines) != 1 {
		t.Fatalf("%d eviction log lines for a burst of %d, want 1: %v", len(lines), n, lines)
	}
	if l := lines[0]; l.level != slog.LevelWarn || l.attrs["peer"] != "127.0.0.1" || l.attrs["limit"] != limitPeer {
		t.Fatalf("eviction log line %+v", l)
	}
	// The rate limit is per peer and kind: nothing else was throttled.
	for _, l := range logs.matching(StateRejected) {
		t.Errorf("unexpected refusal logged: %v", fmt.Sprint(l))
	}
}
