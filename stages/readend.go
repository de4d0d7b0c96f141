package stages

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadToEnd hands fn every committed record of topic's partitions from
// start up to the end offsets they have when it is called: how a stage
// rebuilds state from its own output or changelog when partitions are
// assigned. A partition with nothing to read is skipped; a transaction
// still open when the end is reached holds that end back, and reading stops
// once the broker has had nothing more to give for two polls.
func ReadToEnd(ctx context.Context, opts []kgo.Opt, topic string, partitions []int32, start kgo.Offset, fn func(*kgo.Record)) error {
	if len(partitions) == 0 {
		return nil
	}
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		return fmt.Errorf("read %s: list end offsets: %w", topic, err)
	}
	want := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	for _, p := range partitions {
		end, ok := ends.Lookup(topic, p)
		if !ok || end.Err != nil || end.Offset <= 0 {
			continue
		}
		want[p] = start
		remaining[p] = end.Offset
	}
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: want}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The end offset is usually a transaction's commit marker, which
		// read_committed never returns: keep control records, so reaching
		// it ends the read instead of two idle polls.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	idle := 0
	for len(remaining) > 0 && idle < 2 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fs.NumRecords() == 0 {
			idle++
			continue
		}
		idle = 0
		fs.EachRecord(func(r *kgo.Record) {
			// A marker is not a record: only its offset counts.
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		})
	}
	return nil
}
