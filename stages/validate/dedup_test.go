package validate

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// A restarted validate knows every message that already passed on the
// partitions it was given, and only those.
func TestRebuildDedupReadsCommittedValidOutput(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topics.Valid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	kafka := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	cl, err := kgo.NewClient(append(kafka, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	records := []*kgo.Record{
		{Partition: 0, Headers: []kgo.RecordHeader{{Key: topics.HeaderIdempotencyKey, Value: []byte("ehr/MSG1")}}},
		{Partition: 0, Headers: []kgo.RecordHeader{{Key: topics.HeaderInterface, Value: []byte("ehr")}}},
		{Partition: 1, Headers: []kgo.RecordHeader{{Key: topics.HeaderIdempotencyKey, Value: []byte("ehr/MSG2")}}},
	}
	for _, r := range records {
		r.Topic, r.Value = topics.Valid, []byte("v")
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name       string
		partitions []int32
		seen       map[int32][]string
		notSeen    map[int32][]string
		size       int
	}{
		{"both partitions", []int32{0, 1}, map[int32][]string{0: {"ehr/MSG1"}, 1: {"ehr/MSG2"}}, map[int32][]string{1: {"ehr/MSG1"}}, 2},
		{"only partition 1", []int32{1}, map[int32][]string{1: {"ehr/MSG2"}}, map[int32][]string{0: {"ehr/MSG1"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := stages.NewDedup(0)
			if err := RebuildDedup(ctx, d, kafka, tt.partitions); err != nil {
				t.Fatal(err)
			}
			if d.Size() != tt.size {
				t.Errorf("rebuilt %d keys, want %d (a record without an idempotency key is not one)", d.Size(), tt.size)
			}
			for p, keys := range tt.seen {
				for _, k := range keys {
					if !d.Seen(p, k) {
						t.Errorf("partition %d: %s not remembered", p, k)
					}
				}
			}
			for p, keys := range tt.notSeen {
				for _, k := range keys {
					if d.Seen(p, k) {
						t.Errorf("partition %d: %s remembered, but it passed on another partition", p, k)
					}
				}
			}
		})
	}
}
