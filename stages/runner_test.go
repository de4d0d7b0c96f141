package stages_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

const (
	inTopic  = "test.in"
	outTopic = "test.out"
)

// harness is an in-process broker with an input and output topic.
type harness struct {
	t       *testing.T
	cluster *kfake.Cluster
	opts    []kgo.Opt
	serde   *avro.Serde
}

func newHarness(t *testing.T, partitions int32) *harness {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, inTopic, outTopic, topics.DeadLetter("test")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, cluster: c, opts: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, serde: serde}
}

// produce writes values to the input topic, keyed so that key k always
// lands on the same partition.
func (h *harness) produce(keys []string, values []string) {
	h.t.Helper()
	cl, err := kgo.NewClient(h.opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i, v := range values {
		recs = append(recs, &kgo.Record{Topic: inTopic, Key: []byte(keys[i%len(keys)]), Value: []byte(v)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// consume reads committed records of topic until want arrive or the
// deadline passes.
func (h *harness) consume(topic string, want int, wait time.Duration) []*kgo.Record {
	h.t.Helper()
	cl, err := kgo.NewClient(append(h.opts, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(wait)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		fs := cl.PollFetches(ctx)
		cancel()
		out = append(out, fs.Records()...)
	}
	return out
}

func (h *harness) run(rc stages.RunnerConfig) (stop func()) {
	h.t.Helper()
	rc.Stage = "test"
	rc.Inputs = []string{inTopic}
	rc.Kafka = h.opts
	rc.Serde = h.serde
	if rc.RetryInitial == 0 {
		rc.RetryInitial = 10 * time.Millisecond
	}
	r, err := stages.NewRunner(rc)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	return func() { cancel(); <-done }
}

func copyTo(topic string) stages.ProcessorFunc {
	return func(_ context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		return []stages.Envelope{{Topic: topic, Key: in.Key, Value: in.Value, Headers: in.Headers.Derive("test", time.Now())}}, nil
	}
}

func values(n int, prefix string) []string {
	var vs []string
	for i := range n {
		vs = append(vs, fmt.Sprintf("%s-%04d", prefix, i))
	}
	return vs
}

// A restarted stage resumes from its committed offsets: every input appears
// exactly once on the output across two runs.
func TestRunnerExactlyOnceAcrossRestart(t *testing.T) {
	h := newHarness(t, 3)
	h.produce([]string{"a", "b", "c", "d"}, values(200, "first"))
	stop := h.run(stages.RunnerConfig{Processor: copyTo(outTopic), MaxRecords: 37})
	got := h.consume(outTopic, 200, 20*time.Second)
	stop()
	h.produce([]string{"a", "b", "c", "d"}, values(100, "second"))
	stop = h.run(stages.RunnerConfig{Processor: copyTo(outTopic), MaxRecords: 37})
	defer stop()
	got = h.consume(outTopic, 300, 20*time.Second)
	// Give a wrongly-replaying runner the chance to write more.
	extra := h.consume(outTopic, 301, 500*time.Millisecond)
	if len(got) != 300 || len(extra) != 300 {
		t.Fatalf("output has %d (then %d) records, want exactly 300", len(got), len(extra))
	}
	seen := map[string]bool{}
	for _, r := range got {
		if seen[string(r.Value)] {
			t.Fatalf("duplicate %s", r.Value)
		}
		seen[string(r.Value)] = true
	}
}

// A permanent error dead-letters the record with the reason and its origin,
// and the stage goes on with the next record.
func TestRunnerDeadLettersPermanentErrors(t *testing.T) {
	h := newHarness(t, 1)
	h.produce([]string{"k"}, []string{"good-1", "bad-2", "good-3"})
	proc := stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		if bytes.HasPrefix(in.Value, []byte("bad")) {
			return nil, stages.Permanent("hl7.required_field", "PID-3", errors.New("PID-3 is empty"))
		}
		return copyTo(outTopic)(ctx, in)
	})
	stop := h.run(stages.RunnerConfig{Processor: proc})
	defer stop()
	out := h.consume(outTopic, 2, 10*time.Second)
	dlq := h.consume(topics.DeadLetter("test"), 1, 10*time.Second)
	if len(out) != 2 || len(dlq) != 1 {
		t.Fatalf("got %d outputs and %d dead letters, want 2 and 1", len(out), len(dlq))
	}
	var dl avro.DeadLetter
	if err := h.serde.Decode(dlq[0].Value, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.ErrorCode != "hl7.required_field" || dl.ErrorLocation != "PID-3" || string(dl.OriginalValue) != "bad-2" ||
		dl.OriginalTopic != inTopic || dl.OriginalOffset != 1 || dl.Stage != "test" {
		t.Fatalf("dead letter = %+v", dl)
	}
	hdr := map[string]string{}
	for _, x := range dlq[0].Headers {
		hdr[x.Key] = string(x.Value)
	}
	if hdr[topics.HeaderDLQCode] != "hl7.required_field" || hdr[topics.HeaderDLQOffset] != "1" || hdr[topics.HeaderDLQTopic] != inTopic {
		t.Fatalf("dead letter headers = %v", hdr)
	}
}

// An unavailable destination pauses the input: the failing record and every
// later one wait, nothing is skipped, and order holds after recovery.
func TestRunnerUnavailablePausesInOrder(t *testing.T) {
	h := newHarness(t, 1)
	h.produce([]string{"patient"}, values(50, "m"))
	var failures atomic.Int32
	var mu sync.Mutex
	var processed []string
	proc := stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		if string(in.Value) == "m-0020" && failures.Add(1) <= 3 {
			return nil, stages.Unavailable("test.down", errors.New("destination down"))
		}
		mu.Lock()
		processed = append(processed, string(in.Value))
		mu.Unlock()
		return copyTo(outTopic)(ctx, in)
	})
	stop := h.run(stages.RunnerConfig{Processor: proc, PauseFor: 50 * time.Millisecond})
	defer stop()
	out := h.consume(outTopic, 50, 20*time.Second)
	if len(out) != 50 {
		t.Fatalf("got %d outputs, want 50", len(out))
	}
	for i, r := range out {
		if want := fmt.Sprintf("m-%04d", i); string(r.Value) != want {
			t.Fatalf("output %d = %s, want %s (order broken or record skipped)", i, r.Value, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(processed) != 50 {
		t.Fatalf("processor succeeded %d times, want 50 (a record was replayed after being committed)", len(processed))
	}
	if failures.Load() < 4 {
		t.Fatalf("the unavailable record was tried %d times, want 4", failures.Load())
	}
}

// A transient error is retried in place; the output appears once.
func TestRunnerRetriesTransientErrors(t *testing.T) {
	h := newHarness(t, 1)
	h.produce([]string{"k"}, []string{"x"})
	var tries atomic.Int32
	proc := stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		if tries.Add(1) <= 2 {
			return nil, stages.Transient("test.flaky", errors.New("try again"))
		}
		return copyTo(outTopic)(ctx, in)
	})
	stop := h.run(stages.RunnerConfig{Processor: proc})
	defer stop()
	out := h.consume(outTopic, 1, 10*time.Second)
	extra := h.consume(outTopic, 2, 300*time.Millisecond)
	if len(out) != 1 || len(extra) != 1 || tries.Load() != 3 {
		t.Fatalf("got %d outputs after %d tries, want 1 after 3", len(extra), tries.Load())
	}
}

// Dedup keys join the committed state only when the transaction commits.
func TestDedupFollowsTransaction(t *testing.T) {
	d := stages.NewDedup(0)
	d.Add(0, "k1")
	if !d.Seen(0, "k1") {
		t.Fatal("a key added in the open transaction must be seen (a duplicate within one batch)")
	}
	d.Abort()
	if d.Seen(0, "k1") {
		t.Fatal("an aborted key must be forgotten, or its replay is dropped as a duplicate")
	}
	d.Add(0, "k2")
	d.Commit()
	if !d.Seen(0, "k2") || d.Seen(1, "k2") {
		t.Fatal("a committed key is seen on its partition only")
	}
	d.Forget([]int32{0})
	if d.Seen(0, "k2") {
		t.Fatal("forgotten partition still holds keys")
	}
}

// Load rebuilds the state from the committed output topic.
func TestDedupLoad(t *testing.T) {
	h := newHarness(t, 2)
	cl, err := kgo.NewClient(append(h.opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 20 {
		r := &kgo.Record{Topic: outTopic, Partition: int32(i % 2), Value: []byte("v"),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderIdempotencyKey, Value: fmt.Appendf(nil, "key-%d", i)}}}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	d := stages.NewDedup(0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = d.Load(ctx, h.opts, outTopic, []int32{0, 1}, func(r *kgo.Record) (string, bool) {
		return string(r.Headers[0].Value), true
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() != 20 {
		t.Fatalf("loaded %d keys, want 20", d.Size())
	}
	if !d.Seen(0, "key-4") || d.Seen(1, "key-4") {
		t.Fatal("keys must be loaded into their own partition")
	}
}

// countState counts the transactions that committed.
type countState struct{ commits, aborts atomic.Int32 }

func (c *countState) Commit() { c.commits.Add(1) }
func (c *countState) Abort()  { c.aborts.Add(1) }

// A slow processor (a destination that takes a while to ACK) does not hold
// one transaction for the whole poll: the runner commits after its budget and
// takes up the rest in the next transaction, in order, nothing twice.
func TestRunnerTransactionBudget(t *testing.T) {
	h := newHarness(t, 1)
	h.produce([]string{"k"}, values(40, "s"))
	var mu sync.Mutex
	seen := map[string]int{}
	proc := stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		time.Sleep(10 * time.Millisecond) // the destination's round trip
		mu.Lock()
		seen[string(in.Value)]++
		mu.Unlock()
		return copyTo(outTopic)(ctx, in)
	})
	state := &countState{}
	stop := h.run(stages.RunnerConfig{Processor: proc, State: state, TransactionBudget: 50 * time.Millisecond})
	defer stop()
	out := h.consume(outTopic, 40, 20*time.Second)
	if len(out) != 40 {
		t.Fatalf("got %d outputs, want 40", len(out))
	}
	for i, r := range out {
		if want := fmt.Sprintf("s-%04d", i); string(r.Value) != want {
			t.Fatalf("output %d = %s, want %s", i, r.Value, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("%s processed %d times", v, n)
		}
	}
	if c := state.commits.Load(); c < 4 {
		t.Fatalf("%d transactions for 400ms of work with a 50ms budget, want several", c)
	}
}

// Shutdown while a record is being processed finishes and commits it: after
// a restart nothing is processed twice (for deliver: nothing sent twice).
func TestRunnerShutdownFinishesInFlight(t *testing.T) {
	h := newHarness(t, 1)
	h.produce([]string{"k"}, values(20, "g"))
	var mu sync.Mutex
	seen := map[string]int{}
	inFlight := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	proc := stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		if string(in.Value) == "g-0005" {
			once.Do(func() { close(inFlight); <-release })
		}
		if ctx.Err() != nil {
			return nil, stages.Transient("test.cancelled", ctx.Err())
		}
		mu.Lock()
		seen[string(in.Value)]++
		mu.Unlock()
		return copyTo(outTopic)(ctx, in)
	})
	stop := h.run(stages.RunnerConfig{Processor: proc})
	<-inFlight
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// Let shutdown begin while g-0005 is still being processed.
	time.Sleep(50 * time.Millisecond)
	close(release)
	<-stopped
	stop = h.run(stages.RunnerConfig{Processor: proc})
	defer stop()
	out := h.consume(outTopic, 20, 20*time.Second)
	extra := h.consume(outTopic, 21, 300*time.Millisecond)
	if len(out) != 20 || len(extra) != 20 {
		t.Fatalf("%d outputs, want 20", len(extra))
	}
	mu.Lock()
	defer mu.Unlock()
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("%s processed %d times: the transaction in flight at shutdown was rolled back", v, n)
		}
	}
}

// Keys older than the window are forgotten, so memory stays bounded.
func TestDedupForgetsOutsideWindow(t *testing.T) {
	d := stages.NewDedup(100 * time.Millisecond)
	d.Add(0, "old")
	d.Commit()
	if !d.Seen(0, "old") {
		t.Fatal("a key just committed must be seen")
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Seen(0, "old") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		d.Commit() // sweeps happen on commit
	}
	if d.Seen(0, "old") {
		t.Fatal("a key older than the window is still held")
	}
}

// Ready says whether the runner has a working session (what /readyz shows).
func TestRunnerReady(t *testing.T) {
	h := newHarness(t, 1)
	r, err := stages.NewRunner(stages.RunnerConfig{Stage: "test", Inputs: []string{inTopic}, Kafka: h.opts, Serde: h.serde, Processor: copyTo(outTopic)})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ready() {
		t.Fatal("ready before running")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !r.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !r.Ready() {
		t.Fatal("not ready with a live broker")
	}
	cancel()
	<-done
	if r.Ready() {
		t.Fatal("still ready after stopping")
	}
}

// A processor that panics on one record (a bug meeting odd input) costs
// that record a dead letter, not the engine its life.
func TestRunnerSurvivesPanics(t *testing.T) {
	h := newHarness(t, 1)
	h.produce([]string{"k"}, []string{"a", "boom", "c"})
	proc := stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		if string(in.Value) == "boom" {
			var m map[string]int
			m["x"] = 1 // nil map write: a real bug's panic
		}
		return copyTo(outTopic)(ctx, in)
	})
	stop := h.run(stages.RunnerConfig{Processor: proc})
	defer stop()
	out := h.consume(outTopic, 2, 10*time.Second)
	dlq := h.consume(topics.DeadLetter("test"), 1, 10*time.Second)
	if len(out) != 2 || len(dlq) != 1 {
		t.Fatalf("%d outputs and %d dead letters, want 2 and 1", len(out), len(dlq))
	}
	var dl avro.DeadLetter
	if err := h.serde.Decode(dlq[0].Value, &dl); err != nil || dl.ErrorCode != "internal.panic" || string(dl.OriginalValue) != "boom" {
		t.Fatalf("dead letter %+v (%v)", dl, err)
	}
}
