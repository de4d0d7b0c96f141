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
	"slices"
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
	// Answered are the messages whose application acknowledgement went
	// out, newest last (at most maxAnswered): a replay of one is not
	// awaited again.
	Answered []answered `json:"answered,omitempty"`
	// Seen are the business keys of the events routed, newest last (at
	// most maxSeen, for seenFor): the same result or order arriving in
	// another standard (or from another interface) is not routed twice.
	Seen []seen `json:"seen,omitempty"`
}

// seen is one routed event's business key (identity.BusinessKeys).
type seen struct {
	Key     string    `json:"key"`
	EventID string    `json:"ev"`
	At      time.Time `json:"at"`
}

// Bounds of the seen list: the second form of an event comes within
// hours of the first (a lab's LIS feed and its FHIR API), not months.
const (
	maxSeen = 200
	seenFor = 7 * 24 * time.Hour
)

// duplicateOf is the event already routed with one of keys, other than
// id itself (a replay of one event is not its own duplicate); "" for none.
func (ks *keyState) duplicateOf(keys []string, id string) string {
	if len(keys) == 0 {
		return ""
	}
	for _, x := range ks.e.Seen {
		if x.EventID != id && slices.Contains(keys, x.Key) {
			return x.EventID
		}
	}
	return ""
}

// see notes that event id, with keys, was routed.
func (e *entry) see(keys []string, id string, now time.Time) {
	for _, k := range keys {
		e.Seen = append(e.Seen, seen{Key: k, EventID: id, At: now.UTC()})
	}
	if len(e.Seen) > maxSeen {
		e.Seen = e.Seen[len(e.Seen)-maxSeen:]
	}
}

// answered is a message whose application acknowledgement was sent.
type answered struct {
	MessageID string    `json:"msg"`
	At        time.Time `json:"at"`
}

// Bounds of the answered list: a replay comes within days (a torn
// commit, an operator's replay), not months.
const (
	maxAnswered = 20
	answeredFor = 7 * 24 * time.Hour
)

// remember notes that id's acknowledgement went out.
func (e *entry) remember(id string, now time.Time) {
	e.Answered = append(e.Answered, answered{MessageID: id, At: now.UTC()})
	if len(e.Answered) > maxAnswered {
		e.Answered = e.Answered[len(e.Answered)-maxAnswered:]
	}
}

// wasAnswered reports whether id's acknowledgement went out.
func (e *entry) wasAnswered(id string) bool {
	return slices.ContainsFunc(e.Answered, func(a answered) bool { return a.MessageID == id })
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
	if len(e.Seen) > 0 {
		// The oldest key's expiry: a patient with nothing else kept is
		// then deleted, not left in the compacted table for ever.
		earlier(e.Seen[0].At.Add(seenFor))
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
	ks.e.Answered = slices.DeleteFunc(ks.e.Answered, func(a answered) bool { return now.Sub(a.At) > answeredFor })
	ks.e.Seen = slices.DeleteFunc(ks.e.Seen, func(x seen) bool { return now.Sub(x.At) > seenFor })
	empty := len(ks.e.Orders) == 0 && len(ks.e.Waiting) == 0 && len(ks.e.Replies) == 0 && len(ks.e.Held) == 0 &&
		len(ks.e.Answered) == 0 && len(ks.e.Seen) == 0
	if !ks.found && empty {
		return nil, nil // most keys: nothing kept, nothing to write
	}
	var after []byte
	if !empty {
		var err error
		if after, err = json.Marshal(&ks.e); err != nil {
			return nil, err
		}
	}
	// An entry left empty is deleted (a tombstone): keys without a
	// patient (an idempotency key) would otherwise stay for ever.
	if bytes.Equal(ks.before, after) {
		return nil, nil
	}
	c := s.orders.Change(ks.partition, ks.key, after, h.Clone())
	// The index changes with the table: both commit or abort with the
	// transaction (timerIndex is a TxnState).
	s.timers.set(ks.partition, ks.key, ks.e.due(), len(ks.e.Replies) > 0)
	return &c, nil
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
				s.timers.repair(p, key, e.due(), len(e.Replies) > 0)
			}
		})
	}
}

// ForgetTimers drops the timer index of partitions this copy no longer
// owns.
func (s *Stage) ForgetTimers(partitions []int32) { s.timers.forget(partitions) }
