package mllp

// This file bounds the server's warnings: a flood of refused or silent
// connections costs a log line a minute per peer and kind, not a line a
// connection, and the bookkeeping stays bounded however many peers flood.

import (
	"sync"
	"time"
)

// Rate limit defaults.
const (
	logEvery    = time.Minute
	logMaxPeers = 4096 // (peer, kind) pairs tracked before peers are pooled
	// keepSuppressed is how many intervals a key with suppressed events
	// outlives its interval.
	keepSuppressed = 5
)

// otherPeers is the key events are counted under once logMaxPeers pairs
// are being tracked, so that a flood from many addresses still logs a line
// a minute per kind and no more.
const otherPeers = "(other peers)"

type limitKey struct {
	peer string
	kind ConnState
}

type limitEntry struct {
	last       time.Time // when a line was last let through
	suppressed int       // events not logged since
}

// logLimiter lets through one event per (peer, kind) per interval and counts
// the rest. Its zero value uses logEvery and logMaxPeers.
type logLimiter struct {
	every time.Duration // 0: logEvery
	max   int           // 0: logMaxPeers

	mu        sync.Mutex
	seen      map[limitKey]*limitEntry
	lastSweep time.Time
}

// allow records an event from peer at now and reports whether to log it,
// with the number of the same key's events suppressed since its last line.
func (l *logLimiter) allow(peer string, kind ConnState, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	every, max := orDefault(l.every, logEvery), orDefault(l.max, logMaxPeers)
	if l.seen == nil {
		l.seen = map[limitKey]*limitEntry{}
		l.lastSweep = now
	}
	if now.Sub(l.lastSweep) >= every || (len(l.seen) >= max && now.Sub(l.lastSweep) >= every/8) {
		l.sweep(now, every)
	}
	k := limitKey{peer, kind}
	e, found := l.seen[k]
	if !found && len(l.seen) >= max {
		k.peer = otherPeers
		e, found = l.seen[k]
	}
	if !found {
		l.seen[k] = &limitEntry{last: now}
		return true, 0
	}
	if now.Sub(e.last) < every {
		e.suppressed++
		return false, 0
	}
	suppressed = e.suppressed
	e.last, e.suppressed = now, 0
	return true, suppressed
}

// sweep forgets the keys whose interval has passed. One with events
// suppressed is kept a few intervals longer, so that its peer's next line
// still carries the count; after that the count is dropped with it (the
// peer has been quiet for minutes), which bounds what a flood leaves behind.
func (l *logLimiter) sweep(now time.Time, every time.Duration) {
	l.lastSweep = now
	for k, e := range l.seen {
		if age := now.Sub(e.last); age >= every && (e.suppressed == 0 || age >= keepSuppressed*every) {
			delete(l.seen, k)
		}
	}
}

// size is how many keys are tracked (for tests).
func (l *logLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}
