package engine_test

// The replay row of the fault matrix: a dead letter put right by hand, by
// copying its original record back, as careflow dlq replay does for an
// operator (TestDLQReplayDeliversOnce).

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/topics"
)

// An interface that does not accept ADT^A04 dead-letters one on
// careflow.dlq.validate. The engine stops; a second one starts on the same
// data directory with a configuration that accepts the type; the original
// record, found from the dead letter's careflow.dlq.original_* headers, is
// copied byte for byte (value, key, headers) back onto its topic and
// partition. It is delivered exactly once, nothing delivered before is
// delivered again, and copying it back a second time is suppressed by
// validate's dedup as a duplicate.
func TestFaultReplayDeadLetter(t *testing.T) {
	t.Parallel() // its engine is its own; the timing-sensitive destination rows run alone
	fe := newFaultEstate(t)
	fe.Accept = `"ADT^A01", "ADT^A08", "ORM^O01"`
	lab := startFaultLab(t, fe.Lab, labAlwaysAA)
	dataDir := t.TempDir()
	first := startEngine(t, fe.config(t), dataDir)
	tail := newFaultTail(t, first)
	c := &mllp.Client{Addr: fe.EHR}
	defer c.Close()
	faultSend(t, c, adt("A01", "RP1", "RP-0"), "AA")
	faultSend(t, c, adt("A04", "RP1", "RP-1"), "AR") // stored, a type the interface does not take
	sent := []faultSent{{ehrKey("RP-0"), []string{"lab"}}, {ehrKey("RP-1"), []string{"lab"}}}
	tail.settle(sent, 20*time.Second)
	var dl faultDeadLetter
	for _, d := range tail.deadLetters(topics.StageValidate) {
		if d.header(topics.HeaderIdempotencyKey) == ehrKey("RP-1") {
			dl = d
		}
	}
	if dl.ErrorCode != "hl7.unsupported_message_type" || dl.header(topics.HeaderDLQCode) != dl.ErrorCode {
		t.Fatalf("validate dead letter code %q (header %q), want hl7.unsupported_message_type", dl.ErrorCode, dl.header(topics.HeaderDLQCode))
	}
	topic := dl.header(topics.HeaderDLQTopic)
	partition, perr := strconv.ParseInt(dl.header(topics.HeaderDLQPartition), 10, 32)
	offset, oerr := strconv.ParseInt(dl.header(topics.HeaderDLQOffset), 10, 64)
	if topic != topics.Raw || perr != nil || oerr != nil {
		t.Fatalf("dead letter says the original is at %q partition %q offset %q", topic,
			dl.header(topics.HeaderDLQPartition), dl.header(topics.HeaderDLQOffset))
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	fe.Accept = `"ADT^*", "ORM^O01"`
	second := startEngine(t, fe.config(t), dataDir)
	tail = newFaultTail(t, second)
	orig := faultRecordAt(t, second, topic, int32(partition), offset)
	if !bytes.Equal(orig.Value, dl.OriginalValue) || !bytes.Equal(orig.Key, dl.OriginalKey) || len(orig.Headers) != len(dl.OriginalHeaders) {
		t.Fatalf("record at %s/%d@%d is not the one the dead letter holds", topic, partition, offset)
	}
	for i, h := range orig.Headers {
		if h.Key != dl.OriginalHeaders[i].Key || !bytes.Equal(h.Value, dl.OriginalHeaders[i].Value) {
			t.Fatalf("header %d of the original differs from the dead letter's copy", i)
		}
	}

	faultReplay(t, second, orig)
	a04s := func() (n int) {
		for _, m := range lab.delivered() {
			if m.Get("MSH-9.2") == "A04" {
				n++
			}
		}
		return n
	}
	delivered := func(key string) (n int) {
		for _, o := range tail.outcomes(key) {
			if o.Status == avro.StatusDelivered && o.Destination == "lab" {
				n++
			}
		}
		return n
	}
	await.For(t, 20*time.Second, 20*time.Millisecond, func() error {
		tail.poll()
		if a04s() != 1 || delivered(ehrKey("RP-1")) != 1 {
			return fmt.Errorf("replayed A04: %d at the lab, %d delivered outcomes", a04s(), delivered(ehrKey("RP-1")))
		}
		return nil
	})

	faultReplay(t, second, orig)
	await.For(t, 20*time.Second, 20*time.Millisecond, func() error {
		tail.poll()
		dups := 0
		for _, o := range tail.outcomes(ehrKey("RP-1")) {
			if o.Status == avro.StatusDuplicate && o.Stage == topics.StageValidate {
				dups++
			}
		}
		m, err := faultMetrics(second)
		if err != nil {
			return err
		}
		if dups != 1 || !strings.Contains(m, `careflow_validate_total{interface="ehr",result="duplicate"} 1`) {
			return fmt.Errorf("second replay: %d duplicate outcomes, want 1 and careflow_validate_total duplicate 1", dups)
		}
		return nil
	})
	// Validate dropped it, so nothing downstream can send it again.
	if a04s() != 1 || delivered(ehrKey("RP-1")) != 1 || delivered(ehrKey("RP-0")) != 1 || len(lab.seen()) != 2 {
		t.Fatalf("after both replays: %d A04 at the lab, %d and %d delivered outcomes, %d frames; want 1, 1, 1, 2",
			a04s(), delivered(ehrKey("RP-1")), delivered(ehrKey("RP-0")), len(lab.seen()))
	}
}

// faultRecordAt reads the record at topic/partition@offset.
func faultRecordAt(t *testing.T, eng *engine.Engine, topic string, partition int32, offset int64) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(eng.Brokers()...), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		for _, r := range cl.PollFetches(ctx).Records() {
			if r.Offset == offset {
				return r
			}
		}
	}
	t.Fatalf("no record at %s/%d@%d", topic, partition, offset)
	return nil
}

// faultReplay produces a copy of orig (value, key, headers) to its topic
// and partition, as an operator does with kcat -p.
func faultReplay(t *testing.T, eng *engine.Engine, orig *kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(eng.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: orig.Topic, Partition: orig.Partition, Key: orig.Key, Value: orig.Value}
	for _, h := range orig.Headers {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("replay to %s/%d: %v", orig.Topic, orig.Partition, err)
	}
	if rec.Partition != orig.Partition {
		t.Fatalf("replay landed on partition %d, want %d", rec.Partition, orig.Partition)
	}
}
