package stages

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Table is a stage's keyed state with a compacted changelog topic behind
// it: the last value per key, per input partition. A processor reads it
// with Get and changes it with Put, which returns the changelog record to
// put among its outputs, so the change is written in the same transaction
// as the output it explains: a crash neither loses nor repeats it. Until
// that transaction commits (TxnState) the change is visible to the
// processor only, and an abort forgets it.
//
// The changelog record is keyed like the input record (the patient key),
// so it lands on the input's partition number, and Restore rebuilds a
// partition from the changelog's same partition when it is assigned.
// That relies on the input and changelog topics having one partition
// count, as careflow creates them.
type Table struct {
	topic     string
	mu        sync.Mutex
	committed map[int32]map[string][]byte
	pending   map[int32]map[string][]byte
}

// NewTable returns an empty table whose changelog is topic.
func NewTable(topic string) *Table {
	return &Table{topic: topic, committed: map[int32]map[string][]byte{}, pending: map[int32]map[string][]byte{}}
}

// Topic is the table's changelog.
func (t *Table) Topic() string { return t.topic }

// Get returns key's value on partition p: the open transaction's if it
// changed it, else the committed one.
func (t *Table) Get(p int32, key string) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.pending[p][key]; ok {
		return v, v != nil // nil: deleted in the open transaction
	}
	v, ok := t.committed[p][key]
	return v, ok
}

// Put sets key on partition p in the open transaction and returns the
// changelog record, which the processor must return among its outputs.
// A processor that may still fail after deciding a change (and be retried,
// or dead-lettered) should use Change instead and Apply it only once its
// outputs are certain: a retry must not see its own failed attempt's state.
func (t *Table) Put(p int32, key string, value []byte, h Headers) Envelope {
	c := t.Change(p, key, value, h)
	t.Apply(c)
	return c.Record
}

// Change is a change to a table decided but not yet made: its changelog
// record, and the state to set with Apply.
type Change struct {
	Partition int32
	Key       string
	Value     []byte
	Record    Envelope
}

// Change returns the change setting key on partition p, without making
// it. A nil value deletes the key: its changelog record is a tombstone,
// which compaction removes.
func (t *Table) Change(p int32, key string, value []byte, h Headers) Change {
	return Change{Partition: p, Key: key, Value: value, Record: Envelope{Topic: t.topic, Key: []byte(key), Value: value, Headers: h}}
}

// Apply makes changes in the open transaction.
func (t *Table) Apply(changes ...Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range changes {
		if t.pending[c.Partition] == nil {
			t.pending[c.Partition] = map[string][]byte{}
		}
		t.pending[c.Partition][c.Key] = c.Value
	}
}

// Commit implements TxnState: the open transaction's changes are now what
// its changelog records say.
func (t *Table) Commit() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, kv := range t.pending {
		if t.committed[p] == nil {
			t.committed[p] = map[string][]byte{}
		}
		for k, v := range kv {
			if v == nil {
				delete(t.committed[p], k) // a tombstone
				continue
			}
			t.committed[p][k] = v
		}
	}
	clear(t.pending)
}

// Abort implements TxnState: the open transaction's changes are forgotten,
// as its changelog records are.
func (t *Table) Abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.pending)
}

// Forget drops partitions this copy no longer owns; another copy now
// changes them, and Restore reads them afresh if they come back.
func (t *Table) Forget(partitions []int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range partitions {
		delete(t.committed, p)
		delete(t.pending, p)
	}
}

// Seed sets key on partition p as committed state when the table has no
// value for it: for state rebuilt from elsewhere when the changelog lost
// it. The changelog learns the key at its next Put.
func (t *Table) Seed(p int32, key string, value []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.committed[p][key]; ok {
		return
	}
	if t.committed[p] == nil {
		t.committed[p] = map[string][]byte{}
	}
	t.committed[p][key] = value
}

// Each calls fn for every committed key of partition p (the open
// transaction's changes are not seen), in no particular order. fn must not
// call the table.
func (t *Table) Each(p int32, fn func(key string, value []byte)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.committed[p] {
		fn(k, v)
	}
}

// Len is the number of committed keys held.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, kv := range t.committed {
		n += len(kv)
	}
	return n
}

// Restore replaces partitions' state with the last committed value of each
// key on the changelog's same partitions. A changelog that is missing or
// empty restores nothing: the state starts again from the next records.
func (t *Table) Restore(ctx context.Context, opts []kgo.Opt, partitions []int32) error {
	loaded := map[int32]map[string][]byte{}
	for _, p := range partitions {
		loaded[p] = map[string][]byte{}
	}
	err := ReadToEnd(ctx, opts, t.topic, partitions, kgo.NewOffset().AtStart(), func(r *kgo.Record) {
		if r.Value == nil {
			delete(loaded[r.Partition], string(r.Key)) // a tombstone
			return
		}
		loaded[r.Partition][string(r.Key)] = r.Value
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w", t.topic, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, kv := range loaded {
		t.committed[p] = kv
		delete(t.pending, p)
	}
	return nil
}

// TxnStates is several TxnStates that commit and abort together.
type TxnStates []TxnState

// Commit implements TxnState.
func (s TxnStates) Commit() {
	for _, x := range s {
		x.Commit()
	}
}

// Abort implements TxnState.
func (s TxnStates) Abort() {
	for _, x := range s {
		x.Abort()
	}
}
