// This file is route's timer index: per partition, the keys whose entries
// hold a timer and when the first falls due, and the keys with an
// application acknowledgement waiting. Tick reads only the keys due, and
// deliver's outcomes read an entry only when it may hold an
// acknowledgement. The index is changed with the order table, in the
// transaction (it is a stages.TxnState: a change is seen by its own
// transaction at once, and kept or dropped with it), so it never names a
// timer the table lost nor misses one the table holds. Reindex rebuilds it
// from the table when partitions are assigned.

package route

import (
	"sync"
	"time"

	"github.com/careflow-health/careflow/stages"
)

// timerMark is one key's entry in the index.
type timerMark struct {
	due     time.Time // zero: no timer
	replies bool      // an acknowledgement waits
}

type timerIndex struct {
	mu        sync.Mutex
	committed map[int32]map[string]timerMark
	pending   map[int32]map[string]timerMark // the open transaction's
}

var _ stages.TxnState = (*timerIndex)(nil)

func put(m map[int32]map[string]timerMark, p int32, key string, v timerMark) map[int32]map[string]timerMark {
	if m == nil {
		m = map[int32]map[string]timerMark{}
	}
	if m[p] == nil {
		m[p] = map[string]timerMark{}
	}
	m[p][key] = v
	return m
}

// set records key's timer and acknowledgement flag in the open
// transaction.
func (x *timerIndex) set(p int32, key string, due time.Time, replies bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.pending = put(x.pending, p, key, timerMark{due: due, replies: replies})
}

// repair records key as committed state: for marks read from the
// committed table (Reindex, or a Tick that found the index stale).
func (x *timerIndex) repair(p int32, key string, due time.Time, replies bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if due.IsZero() && !replies {
		delete(x.committed[p], key)
		return
	}
	x.committed = put(x.committed, p, key, timerMark{due: due, replies: replies})
}

// postpone moves key's committed timer to until: a key whose due work
// failed is tried again later, while the other keys' timers go on.
func (x *timerIndex) postpone(p int32, key string, until time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.committed[p][key]
	m.due = until
	x.committed = put(x.committed, p, key, m)
}

func (x *timerIndex) get(p int32, key string) timerMark {
	if m, ok := x.pending[p][key]; ok {
		return m
	}
	return x.committed[p][key]
}

// awaitsReply reports whether key on partition p has an acknowledgement
// waiting.
func (x *timerIndex) awaitsReply(p int32, key string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.get(p, key).replies
}

type dueKey struct {
	p   int32
	key string
}

// dueBy lists the keys with a timer due at now.
func (x *timerIndex) dueBy(now time.Time) []dueKey {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []dueKey
	for p, keys := range x.committed {
		for k := range keys {
			if m := x.get(p, k); !m.due.IsZero() && !now.Before(m.due) {
				out = append(out, dueKey{p, k})
			}
		}
	}
	for p, keys := range x.pending {
		for k, m := range keys {
			if _, seen := x.committed[p][k]; !seen && !m.due.IsZero() && !now.Before(m.due) {
				out = append(out, dueKey{p, k})
			}
		}
	}
	return out
}

// Commit implements stages.TxnState.
func (x *timerIndex) Commit() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for p, keys := range x.pending {
		for k, m := range keys {
			if m.due.IsZero() && !m.replies {
				delete(x.committed[p], k)
				continue
			}
			x.committed = put(x.committed, p, k, m)
		}
	}
	clear(x.pending)
}

// Abort implements stages.TxnState.
func (x *timerIndex) Abort() {
	x.mu.Lock()
	defer x.mu.Unlock()
	clear(x.pending)
}

func (x *timerIndex) forget(parts []int32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range parts {
		delete(x.committed, p)
		delete(x.pending, p)
	}
}

// Timers is the stage's timer index, which the runner must commit and
// abort with the order table (beside it in RunnerConfig.State).
func (s *Stage) Timers() stages.TxnState { return &s.timers }
