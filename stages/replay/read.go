package replay

// Reading: the dead-letter topics and careflow.replays, each from its
// start to the end it has when read (read committed).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// List is the letters f selects, newest first.
func List(ctx context.Context, opts []kgo.Opt, serde *avro.Serde, f Filter) ([]Letter, error) {
	ls, _, err := read(ctx, opts, serde, f)
	return ls, err
}

// Get is the letter with id, or ErrNotFound.
func Get(ctx context.Context, opts []kgo.Opt, serde *avro.Serde, id string) (*Letter, error) {
	if _, err := parseID(id); err != nil {
		return nil, err
	}
	ls, _, err := read(ctx, opts, serde, Filter{IDs: []string{id}})
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, fmt.Errorf("dead letter %s: %w", id, ErrNotFound)
	}
	return &ls[0], nil
}

// read is the letters f selects, newest first, and whether
// careflow.replays exists. Ids that are not ids select nothing.
func read(ctx context.Context, opts []kgo.Opt, serde *avro.Serde, f Filter) ([]Letter, bool, error) {
	want := f.stages()
	names := []string{topics.Replays}
	for _, s := range want {
		names = append(names, topics.DeadLetter(s))
	}
	parts, err := partitions(ctx, opts, names)
	if err != nil {
		return nil, false, err
	}
	replays, err := readReplays(ctx, opts, parts[topics.Replays])
	if err != nil {
		return nil, false, err
	}
	var out []Letter
	for _, stage := range want {
		topic := topics.DeadLetter(stage)
		ps, start := parts[topic], kgo.NewOffset().AtStart()
		if len(f.IDs) == 1 {
			// One letter: read from it, on its partition only.
			p, err := parseID(f.IDs[0])
			if err != nil {
				return nil, false, nil
			}
			if !slices.Contains(ps, p.partition) {
				continue
			}
			ps, start = []int32{p.partition}, kgo.NewOffset().At(p.offset)
		}
		err := stages.ReadToEnd(ctx, opts, topic, ps, start, func(r *kgo.Record) {
			l := letterOf(ctx, serde, stage, r)
			l.Replays = replays[l.ID]
			if f.match(&l) {
				out = append(out, l)
			}
		})
		if err != nil {
			return nil, false, fmt.Errorf("dead letters: read %s: %w", topic, err)
		}
	}
	slices.SortFunc(out, func(a, b Letter) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return compareIDs(b.ID, a.ID)
	})
	return out, parts[topics.Replays] != nil, nil
}

// compareIDs orders ids by stage, partition and offset, numerically.
func compareIDs(a, b string) int {
	pa, _ := parseID(a)
	pb, _ := parseID(b)
	switch {
	case pa.stage != pb.stage:
		return slices.Index(topics.Stages, pa.stage) - slices.Index(topics.Stages, pb.stage)
	case pa.partition != pb.partition:
		return int(pa.partition - pb.partition)
	}
	return int(pa.offset - pb.offset)
}

// partitions lists each topic's partitions; a topic missing from this
// Kafka has none (a stage that never dead-lettered anything on a cluster
// careflow did not create). No topic at all is an error: that is not
// careflow's Kafka, or it is not reachable.
func partitions(ctx context.Context, opts []kgo.Opt, names []string) (map[string][]int32, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer cl.Close()
	// Bound the first contact, so a careflow that is not running is an
	// error in seconds; the reads take as long as the topics need.
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(mctx, names...)
	if err != nil {
		return nil, fmt.Errorf("dead letters: reach Kafka (is careflow running?): %w", err)
	}
	out := map[string][]int32{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Topic] = append(out[o.Topic], o.Partition)
		}
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("dead letters: none of %v exists on this Kafka (is it careflow's?)", names)
	}
	return out, nil
}

// letterOf is the dead-letter record r of stage as a Letter. A record
// whose value is not a DeadLetter (its encoding failed when it was
// written, and the original bytes were kept instead) is described from
// its headers.
func letterOf(ctx context.Context, serde *avro.Serde, stage string, r *kgo.Record) Letter {
	var dl avro.DeadLetter
	err := serde.DecodeContext(ctx, r.Value, &dl)
	if err != nil {
		h := func(k string) string {
			for _, x := range r.Headers {
				if x.Key == k {
					return string(x.Value)
				}
			}
			return ""
		}
		p, _ := strconv.ParseInt(h(topics.HeaderDLQPartition), 10, 32)
		o, _ := strconv.ParseInt(h(topics.HeaderDLQOffset), 10, 64)
		dl = avro.DeadLetter{Stage: stage, ErrorCode: h(topics.HeaderDLQCode), ErrorLocation: h(topics.HeaderDLQLocation),
			ErrorText: h(topics.HeaderDLQText), MessageID: h(topics.HeaderMessageID), CorrelationID: h(topics.HeaderCorrelationID),
			Interface: h(topics.HeaderInterface), OriginalTopic: h(topics.HeaderDLQTopic), OriginalPartition: int32(p),
			OriginalOffset: o, At: r.Timestamp.UTC()}
	}
	l := Letter{
		ID: ID(stage, r.Partition, r.Offset), Stage: stage, Code: dl.ErrorCode, Location: dl.ErrorLocation, Text: dl.ErrorText,
		Interface: dl.Interface, Destination: topics.DestinationOf(dl.OriginalTopic),
		MessageID: dl.MessageID, CorrelationID: dl.CorrelationID, At: dl.At,
		OriginalTopic: dl.OriginalTopic, OriginalPartition: dl.OriginalPartition, OriginalOffset: dl.OriginalOffset,
		Record: &dl,
	}
	if err != nil {
		l.unreadable = fmt.Errorf("%s partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return l
}

// readReplays is careflow.replays as read: each letter's replays.
func readReplays(ctx context.Context, opts []kgo.Opt, parts []int32) (map[string][]Mark, error) {
	out := map[string][]Mark{}
	var bad error
	err := stages.ReadToEndStrict(ctx, opts, topics.Replays, parts, kgo.NewOffset().AtStart(), func(r *kgo.Record) {
		if r.Value == nil {
			delete(out, string(r.Key))
			return
		}
		var rs []Mark
		if err := json.Unmarshal(r.Value, &rs); err != nil {
			bad = errors.Join(bad, fmt.Errorf("%s partition %d offset %d (letter %s): %w", topics.Replays, r.Partition, r.Offset, r.Key, err))
			return
		}
		out[string(r.Key)] = rs
	})
	if err != nil {
		return nil, fmt.Errorf("dead letters: read %s: %w", topics.Replays, err)
	}
	if bad != nil {
		// A marker that does not read could hide a replay: refusing to
		// go on is what keeps a letter from being replayed twice.
		return nil, fmt.Errorf("dead letters: %w", bad)
	}
	return out, nil
}
