// Package ratelog bounds repeated warnings: one line per key an interval,
// the next carrying how many were not written in between, with the
// bookkeeping bounded however many keys a flood brings. The MLLP server
// keys it by peer and kind of refusal, the router by route, the HTTP
// listeners by the kind of server error.
package ratelog

import (
	"sync"
	"time"
)

// Defaults of a zero Limiter.
const (
	DefaultEvery   = time.Minute
	DefaultMaxKeys = 4096
	// keepSuppressed is how many intervals a key with suppressed events
	// outlives its interval, so that its next line still has the count.
	keepSuppressed = 5
)

// Overflow is the key events are counted under once MaxKeys keys are
// tracked, so that a flood from many sources still logs a line an
// interval and no more.
const Overflow = "(others)"

type entry struct {
	last       time.Time // when a line was last let through
	suppressed int       // events not logged since
}

// Limiter lets through one event per key per interval and counts the
// rest. It is safe for concurrent use; its zero value uses the defaults.
type Limiter struct {
	Every   time.Duration // Default: DefaultEvery.
	MaxKeys int           // Default: DefaultMaxKeys.

	mu        sync.Mutex
	seen      map[string]*entry
	lastSweep time.Time
}

// Allow records an event of key at now and reports whether to log it,
// with the number of key's events suppressed since its last line.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	every, max := l.Every, l.MaxKeys
	if every <= 0 {
		every = DefaultEvery
	}
	if max <= 0 {
		max = DefaultMaxKeys
	}
	if l.seen == nil {
		l.seen = map[string]*entry{}
		l.lastSweep = now
	}
	if now.Sub(l.lastSweep) >= every || (len(l.seen) >= max && now.Sub(l.lastSweep) >= every/8) {
		l.sweep(now, every)
	}
	e, found := l.seen[key]
	if !found && len(l.seen) >= max {
		key = Overflow
		e, found = l.seen[key]
	}
	if !found {
		l.seen[key] = &entry{last: now}
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
// suppressed is kept a few intervals longer, so that its next line still
// carries the count; after that the count is dropped with it (the source
// has been quiet for minutes), which bounds what a flood leaves behind.
func (l *Limiter) sweep(now time.Time, every time.Duration) {
	l.lastSweep = now
	for k, e := range l.seen {
		if age := now.Sub(e.last); age >= every && (e.suppressed == 0 || age >= keepSuppressed*every) {
			delete(l.seen, k)
		}
	}
}

// Size is how many keys are tracked.
func (l *Limiter) Size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}
