package stages

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dedup remembers idempotency keys per input partition. Its state is not
// stored anywhere of its own: on assignment it is rebuilt from the stage's
// own committed output (Load), so it can never disagree with what readers
// see. Keys added during a transaction become permanent only when the
// transaction commits (TxnState), so an aborted batch is not mistaken for a
// duplicate when it is replayed.
//
// Keys are held as 128-bit hashes, not strings: a week of a large
// hospital's traffic is millions of keys per set, and a fixed-size key
// takes about half the memory of the string it stands for
// (BenchmarkDedupMemory). With 128 bits, two different keys colliding
// within a window is not a practical possibility (about 1 in 10^24 at ten
// million keys).
type Dedup struct {
	mu        sync.Mutex
	seen      map[int32]map[dedupKey]int64 // key → when it was committed (unix seconds)
	pending   map[int32]map[dedupKey]struct{}
	window    time.Duration
	lastSweep time.Time
	seeds     [2]maphash.Seed // per process: the set is rebuilt from Kafka on start
}

type dedupKey [2]uint64

func (d *Dedup) hash(key string) dedupKey {
	return dedupKey{maphash.String(d.seeds[0], key), maphash.String(d.seeds[1], key)}
}

// NewDedup returns an empty set that forgets keys older than window (0:
// never), so its memory is bounded by the traffic of one window.
func NewDedup(window time.Duration) *Dedup {
	return &Dedup{
		seen: map[int32]map[dedupKey]int64{}, pending: map[int32]map[dedupKey]struct{}{},
		window: window, lastSweep: time.Now(), seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
}

// Seen reports whether key was committed, or added in the open transaction,
// on partition p.
func (d *Dedup) Seen(p int32, key string) bool {
	h := d.hash(key)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[p][h]; ok {
		return true
	}
	_, ok := d.pending[p][h]
	return ok
}

// Add records key for partition p in the open transaction.
func (d *Dedup) Add(p int32, key string) {
	h := d.hash(key)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending[p] == nil {
		d.pending[p] = map[dedupKey]struct{}{}
	}
	d.pending[p][h] = struct{}{}
}

// Commit makes the open transaction's keys permanent, and now and then
// forgets the keys that fell out of the window.
func (d *Dedup) Commit() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for p, keys := range d.pending {
		if d.seen[p] == nil {
			d.seen[p] = map[dedupKey]int64{}
		}
		for k := range keys {
			d.seen[p][k] = now.Unix()
		}
	}
	clear(d.pending)
	if d.window > 0 && now.Sub(d.lastSweep) > min(d.window/100, time.Minute) {
		d.sweep(now)
	}
}

// sweep drops keys older than the window. Callers hold d.mu.
func (d *Dedup) sweep(now time.Time) {
	d.lastSweep = now
	oldest := now.Add(-d.window).Unix()
	for _, keys := range d.seen {
		for k, at := range keys {
			if at < oldest {
				delete(keys, k)
			}
		}
	}
}

// Abort forgets the open transaction's keys.
func (d *Dedup) Abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.pending)
}

// Forget drops the state of partitions this copy no longer owns.
func (d *Dedup) Forget(partitions []int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range partitions {
		delete(d.seen, p)
		delete(d.pending, p)
	}
}

// Size is the number of committed keys held.
func (d *Dedup) Size() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, m := range d.seen {
		n += len(m)
	}
	return n
}

// KeyFunc extracts the dedup key from a committed output record; ok false
// skips the record.
type KeyFunc func(r *kgo.Record) (key string, ok bool)

// Load replaces the state of partitions with the keys found in topic's same
// partitions, reading committed records written within the set's window
// (all of them when it has none) up to the current end. It relies on the input and the output topic having
// the same partition count and the same key, so a record and its output
// share a partition number.
func (d *Dedup) Load(ctx context.Context, opts []kgo.Opt, topic string, partitions []int32, keyOf KeyFunc) error {
	if len(partitions) == 0 {
		return nil
	}
	start := kgo.NewOffset().AtStart()
	if d.window > 0 {
		start = kgo.NewOffset().AfterMilli(time.Now().Add(-d.window).UnixMilli())
	}
	loaded := map[int32]map[dedupKey]int64{}
	for _, p := range partitions {
		loaded[p] = map[dedupKey]int64{}
	}
	err := ReadToEnd(ctx, opts, topic, partitions, start, func(r *kgo.Record) {
		if k, ok := keyOf(r); ok {
			loaded[r.Partition][d.hash(k)] = r.Timestamp.Unix()
		}
	})
	if err != nil {
		return fmt.Errorf("dedup load: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for p, keys := range loaded {
		d.seen[p] = keys
		delete(d.pending, p)
	}
	return nil
}
