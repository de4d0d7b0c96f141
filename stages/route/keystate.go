// This file is the state route keeps per record key beside the ADT
// sequence: the patient's orders (stages/lifecycle), the results waiting
// for their orders (waiting.go) and the application acknowledgements
// waiting for their destinations' answers (replies.go), one entry per key
// in the order table (careflow.state.orders). A record's processing loads
// the entry once, changes it in memory, and writes it once with its
// outputs; the runner commits or aborts it with them. The timer index
// says which entries hold something that falls due, so Tick reads only
// those.

package route

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/lifecycle"
)

// entry is one key's value in the order table. Patient's orders are
// inlined ("orders"), as before waits and replies were kept.
type entry struct {
	lifecycle.Patient
	Waiting []waiting      `json:"waiting,omitempty"`
	Replies []pendingReply `json:"replies,omitempty"`
	Held    []heldADT      `json:"held,omitempty"`
}

// due is the earliest time something in e falls due; zero for never.
func (e *entry) due() time.Time {
	var d time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	for _, w := range e.Waiting {
		earlier(w.Until)
	}
	for _, r := range e.Replies {
		earlier(r.Until)
	}
	for _, x := range e.Held {
		earlier(x.Until)
	}
	earlier(e.NextDeadline())
	return d
}

// keyState is one key's entry while a record (or a tick) is processed.
// A record that cannot change the entry (an ADT message, most of them)
// has a keyState with the key only: loading and saving a long-stay
// patient's orders for each of their ADT messages would cost more than
// routing them.
type keyState struct {
	partition int32
	key       string
	e         entry
	before    []byte
	found     bool
	loaded    bool // false: the key only; e is empty and is not saved
}

// keyOnly is ks for a record that needs its key but not its entry.
func (s *Stage) keyOnly(p int32, key string) *keyState {
	if s.orders == nil {
		return nil
	}
	return &keyState{partition: p, key: key}
}

// load reads key's entry on partition p; nil when the stage keeps no
// order table.
func (s *Stage) load(p int32, key string) *keyState {
	if s.orders == nil {
		return nil
	}
	ks := &keyState{partition: p, key: key, loaded: true}
	ks.before, ks.found = s.orders.Get(p, key)
	if ks.found && json.Unmarshal(ks.before, &ks.e) != nil {
		ks.e = entry{} // careflow's own entry unreadable: start the key afresh
	}
	return ks
}

// save returns the change writing ks's entry, nil when it did not change.
// The caller applies it once every output is built.
func (s *Stage) save(ks *keyState, h stages.Headers, now time.Time) (*stages.Change, error) {
	if ks == nil || !ks.loaded {
		return nil, nil
	}
	ks.e.Prune(now)
	empty := len(ks.e.Orders) == 0 && len(ks.e.Waiting) == 0 && len(ks.e.Replies) == 0 && len(ks.e.Held) == 0
	if !ks.found && empty {
		return nil, nil // most keys: nothing kept, nothing to write
	}
	after, err := json.Marshal(&ks.e)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(ks.before, after) {
		return nil, nil
	}
	c := s.orders.Change(ks.partition, ks.key, after, h.Clone())
	s.timers.set(ks.partition, ks.key, ks.e.due())
	// Set before the change is applied; if the transaction aborts, the
	// index may name a key with nothing waiting, which costs one read.
	s.timers.setReplies(ks.partition, ks.key, len(ks.e.Replies) > 0)
	return &c, nil
}

// timerIndex is, per partition, the keys whose entries hold a timer and
// when the first falls due. It may name a key whose timer is gone (a
// transaction that set it aborted): Tick then finds nothing due and drops
// it. It never misses one: save sets it before the change is applied, and
// Reindex rebuilds it from the table when partitions are assigned.
//
// It also says which keys have an application acknowledgement waiting,
// so that deliver's outcomes for the rest need not read their entry.
type timerIndex struct {
	mu      sync.Mutex
	due     map[int32]map[string]time.Time
	replies map[int32]map[string]bool
}

// setReplies records whether key on partition p has acknowledgements
// waiting.
func (x *timerIndex) setReplies(p int32, key string, waiting bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !waiting {
		delete(x.replies[p], key)
		return
	}
	if x.replies == nil {
		x.replies = map[int32]map[string]bool{}
	}
	if x.replies[p] == nil {
		x.replies[p] = map[string]bool{}
	}
	x.replies[p][key] = true
}

// awaitsReply reports whether key on partition p may have an
// acknowledgement waiting.
func (x *timerIndex) awaitsReply(p int32, key string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.replies[p][key]
}

func (x *timerIndex) set(p int32, key string, at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if at.IsZero() {
		delete(x.due[p], key)
		return
	}
	if x.due == nil {
		x.due = map[int32]map[string]time.Time{}
	}
	if x.due[p] == nil {
		x.due[p] = map[string]time.Time{}
	}
	x.due[p][key] = at
}

// dueBy lists the (partition, key) pairs due at now.
func (x *timerIndex) dueBy(now time.Time) []struct {
	p   int32
	key string
} {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []struct {
		p   int32
		key string
	}
	for p, keys := range x.due {
		for k, at := range keys {
			if !now.Before(at) {
				out = append(out, struct {
					p   int32
					key string
				}{p, k})
			}
		}
	}
	return out
}

func (x *timerIndex) forget(parts []int32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range parts {
		delete(x.due, p)
		delete(x.replies, p)
	}
}

// Reindex rebuilds the timer index of partitions from the order table:
// call it after the table's Restore (and RebuildOrders) when partitions
// are assigned.
func (s *Stage) Reindex(partitions []int32) {
	if s.orders == nil {
		return
	}
	s.timers.forget(partitions)
	for _, p := range partitions {
		s.orders.Each(p, func(key string, value []byte) {
			var e entry
			if json.Unmarshal(value, &e) == nil {
				s.timers.set(p, key, e.due())
				s.timers.setReplies(p, key, len(e.Replies) > 0)
			}
		})
	}
}

// ForgetTimers drops the timer index of partitions this copy no longer
// owns.
func (s *Stage) ForgetTimers(partitions []int32) { s.timers.forget(partitions) }
