package validate

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// DedupKey is the key validate remembers for one of its own committed
// outputs on careflow.valid: the idempotency key ingest stamped on the
// message. Records without one (none that validate writes) are skipped.
func DedupKey(r *kgo.Record) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == topics.HeaderIdempotencyKey {
			return string(h.Value), true
		}
	}
	return "", false
}

// RebuildDedup fills d, for newly assigned input partitions, with every
// idempotency key that already reached careflow.valid on the same
// partitions. The state is the committed output itself, so it survives
// restarts and rebalances without a store of its own.
func RebuildDedup(ctx context.Context, d *stages.Dedup, kafka []kgo.Opt, partitions []int32) error {
	return d.Load(ctx, kafka, topics.Valid, partitions, DedupKey)
}

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
