package stages

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadToEnd hands fn every committed record of topic's partitions from
// start up to the end offsets they have when it is called: how a stage
// rebuilds state from its own output or changelog when partitions are
// assigned. A partition with nothing to read is skipped; a transaction
// still open when the end is reached holds that end back, and reading stops
// once the broker has had nothing more to give for two polls.
//
// A partition whose end cannot be listed, or a fetch error, is an error.
func ReadToEnd(ctx context.Context, opts []kgo.Opt, topic string, partitions []int32, start kgo.Offset, fn func(*kgo.Record)) error {
	return readToEnd(ctx, opts, topic, partitions, start, fn, false)
}

// ReadToEndStrict is ReadToEnd for a reader about to decide on what it
// read (a replay, a review decision): two idle polls end the read only for
// partitions read to within one offset of their end (the commit marker
// read_committed may not return); a partition further short is waited for
// up to readStall, then the read fails. A slow broker must not look like
// an empty queue.
func ReadToEndStrict(ctx context.Context, opts []kgo.Opt, topic string, partitions []int32, start kgo.Offset, fn func(*kgo.Record)) error {
	return readToEnd(ctx, opts, topic, partitions, start, fn, true)
}

// readStall is how long a strict read waits for a partition short of its
// end before it fails.
const readStall = 15 * time.Second

func readToEnd(ctx context.Context, opts []kgo.Opt, topic string, partitions []int32, start kgo.Offset, fn func(*kgo.Record), strict bool) error {
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
		switch {
		case !ok, errors.Is(end.Err, kerr.UnknownTopicOrPartition):
			continue // never written: nothing to read
		case end.Err != nil:
			return fmt.Errorf("read %s: partition %d end offset: %w", topic, p, end.Err)
		case end.Offset <= 0:
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
	seen := map[int32]int64{} // the next offset expected, per partition
	idle, last := 0, time.Now()
	for len(remaining) > 0 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
				continue // this poll's own second ran out
			}
			return fmt.Errorf("read %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		if fs.NumRecords() == 0 {
			if idle++; idle < 2 {
				continue
			}
			if !strict || nearEnd(remaining, seen) {
				return nil
			}
			if time.Since(last) > readStall {
				return fmt.Errorf("read %s: no progress for %s with partitions short of their ends (next offset %v, ends %v)", topic, readStall, seen, remaining)
			}
			continue
		}
		idle, last = 0, time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			// A marker is not a record: only its offset counts.
			if !r.Attrs.IsControl() {
				fn(r)
			}
			seen[r.Partition] = r.Offset + 1
			if end, ok := remaining[r.Partition]; ok && r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		})
	}
	return nil
}

// nearEnd reports whether every partition still short of its end was read
// to within one offset of it: only a transaction's marker is missing.
func nearEnd(remaining, seen map[int32]int64) bool {
	for p, end := range remaining {
		if n, ok := seen[p]; !ok || end-n > 1 {
			return false
		}
	}
	return true
}
