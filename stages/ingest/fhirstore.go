// This file is the FHIR interfaces' resource store: each resource's
// current version, identifiers and JSON, held in memory and written to the
// compacted careflow.fhir topic beside the raw record of the write that
// made it, so that updates, If-Match, conditional creates and updates, and
// reads survive a restart. It is what a FHIR server must know to answer;
// the clinical meaning of each write travels on careflow.raw.

package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// storedResource is one resource's current version on one interface.
type storedResource struct {
	Interface   string            `json:"interface"`
	Type        string            `json:"type"`
	ID          string            `json:"id"`
	Version     int               `json:"version"`
	LastUpdated time.Time         `json:"last_updated"`
	Identifiers []fhir.Identifier `json:"identifiers"`
	Resource    json.RawMessage   `json:"resource"` // as stored: the client's JSON with id and meta set
}

func (r *storedResource) key() string { return resourceKey(r.Interface, r.Type, r.ID) }

func resourceKey(iface, typ, id string) string { return iface + "/" + typ + "/" + id }

// ETag is the weak entity tag of the version (R4 3.1.0.5).
func (r *storedResource) ETag() string { return fmt.Sprintf(`W/"%d"`, r.Version) }

// stripes serialise writes that touch the same resource or search: a
// read-check-write of one resource (a version, a conditional create) must
// not interleave with another's, while unrelated writes run in parallel.
const stripes = 64

// stripedLocks are mutexes by hash of a key.
type stripedLocks [stripes]sync.Mutex

// lock takes the stripes of every key, in order so that two writes
// cannot deadlock, and returns their release.
func (l *stripedLocks) lock(keys ...string) func() {
	var idx []int
	for _, k := range keys {
		h := fnv.New32a()
		_, _ = h.Write([]byte(k))
		idx = append(idx, int(h.Sum32()%stripes))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		l[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			l[i].Unlock()
		}
	}
}

type resourceStore struct {
	mu  sync.RWMutex
	res map[string]*storedResource
	// byValue indexes resources by identifier value: interface/Type|value
	// to resource keys.
	byValue map[string]map[string]struct{}

	// Searches are locked before resources, never after (fhirwrite.go).
	searchLocks, resourceLocks stripedLocks
}

func newResourceStore() *resourceStore {
	return &resourceStore{res: map[string]*storedResource{}, byValue: map[string]map[string]struct{}{}}
}

func valueKey(iface, typ, value string) string { return iface + "/" + typ + "|" + value }

// searchKey is the stripe key of a conditional search on an interface,
// by its normalised token.
func searchKey(iface, typ, token string) string { return iface + "/" + typ + "?identifier=" + token }

func (st *resourceStore) get(iface, typ, id string) *storedResource {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.res[resourceKey(iface, typ, id)]
}

// find is every resource of typ on iface with an identifier matching tok.
func (st *resourceStore) find(iface, typ string, tok fhir.Identifier) []*storedResource {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var out []*storedResource
	for k := range st.byValue[valueKey(iface, typ, tok.Value)] {
		r := st.res[k]
		if slices.ContainsFunc(r.Identifiers, func(id fhir.Identifier) bool { return id.Matches(tok) }) {
			out = append(out, r)
		}
	}
	return out
}

func (st *resourceStore) put(r *storedResource) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := r.key()
	if old := st.res[k]; old != nil {
		for _, id := range old.Identifiers {
			delete(st.byValue[valueKey(r.Interface, r.Type, id.Value)], k)
		}
	}
	st.res[k] = r
	for _, id := range r.Identifiers {
		vk := valueKey(r.Interface, r.Type, id.Value)
		if st.byValue[vk] == nil {
			st.byValue[vk] = map[string]struct{}{}
		}
		st.byValue[vk][k] = struct{}{}
	}
}

func (st *resourceStore) len() int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return len(st.res)
}

// record is r as its careflow.fhir record.
func (r *storedResource) record() (*kgo.Record, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode %s/%s: %w", r.Type, r.ID, err)
	}
	return &kgo.Record{Topic: topics.FHIR, Key: []byte(r.key()), Value: b}, nil
}

// Load reads careflow.fhir into the store: every resource every FHIR
// interface holds. Ingest calls it before it serves FHIR writes.
func (st *resourceStore) load(ctx context.Context, opts []kgo.Opt) error {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("ingest: load %s: %w", topics.FHIR, err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics.FHIR)
	adm.Close()
	if err != nil {
		return fmt.Errorf("ingest: load %s: %w", topics.FHIR, err)
	}
	var partitions []int32
	ends.Each(func(o kadm.ListedOffset) { partitions = append(partitions, o.Partition) })
	var bad error
	err = stages.ReadToEnd(ctx, opts, topics.FHIR, partitions, kgo.NewOffset().AtStart(), func(rec *kgo.Record) {
		var r storedResource
		if err := json.Unmarshal(rec.Value, &r); err != nil {
			bad = fmt.Errorf("record %d/%d: %w", rec.Partition, rec.Offset, err)
			return
		}
		st.put(&r)
	})
	if err != nil {
		return fmt.Errorf("ingest: load %s: %w", topics.FHIR, err)
	}
	if bad != nil {
		return fmt.Errorf("ingest: load %s: %w", topics.FHIR, bad)
	}
	return nil
}
