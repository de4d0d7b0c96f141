package mllp

import (
	"fmt"
	"log/slog"
	"testing"
)

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
