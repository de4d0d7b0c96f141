package validate

import "sync"

// Deduper remembers the idempotency keys of the messages that passed
// validation, per input partition. Keys are per partition because a
// message's resend carries the same patient key and so lands on the same
// partition; the runner rebuilds a partition's state from careflow.valid
// when it is assigned, so the state survives restarts and rebalances.
type Deduper interface {
	// Seen reports whether key has already passed on partition.
	Seen(partition int32, key string) bool
	// Add records that key passed on partition.
	Add(partition int32, key string)
}

// MemoryDedup is a Deduper held in memory, without bound or persistence:
// for tests, and as the store a runner rebuilds from careflow.valid.
type MemoryDedup struct {
	mu   sync.Mutex
	keys map[int32]map[string]struct{}
}

// NewMemoryDedup returns an empty MemoryDedup.
func NewMemoryDedup() *MemoryDedup {
	return &MemoryDedup{keys: make(map[int32]map[string]struct{})}
}

// Seen implements Deduper.
func (d *MemoryDedup) Seen(partition int32, key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.keys[partition][key]
	return ok
}

// Add implements Deduper.
func (d *MemoryDedup) Add(partition int32, key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.keys[partition]
	if p == nil {
		p = make(map[string]struct{})
		d.keys[partition] = p
	}
	p[key] = struct{}{}
}

// Forget drops partition's keys, for a runner whose partition was revoked.
func (d *MemoryDedup) Forget(partition int32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.keys, partition)
}
