package stages_test

// Benchmarks of the stage loop: how many records a second one Runner moves
// from an input topic to an output topic, transactions and all, against
// what the same broker accepts from a plain acks=all producer. The ratio of
// the two says how much the transactional loop costs; both run on the
// in-process kfake broker, so neither includes network or disk.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	benchPartitions = 6    // the demo's kafka.partitions
	benchKeys       = 100  // patients: a key always lands on one partition
	benchValueSize  = 1024 // about one ADT message
	benchChunk      = 5000 // records produced per ProduceSync, to bound memory
)

// benchRecords calls fn with the records of chunk [from, to) of n: 1 KiB
// values of printable noise (HL7-like text, not a repeated pattern that
// compression would flatten), keyed over benchKeys patients.
func benchRecords(topic string, from, to int, rng *rand.ChaCha8) []*kgo.Record {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789|^~&"
	recs := make([]*kgo.Record, 0, to-from)
	buf := make([]byte, (to-from)*benchValueSize)
	_, _ = rng.Read(buf)
	for i := range buf {
		buf[i] = alphabet[int(buf[i])%len(alphabet)]
	}
	for i := from; i < to; i++ {
		v := buf[(i-from)*benchValueSize : (i-from+1)*benchValueSize : (i-from+1)*benchValueSize]
		recs = append(recs, &kgo.Record{
			Topic: topic,
			Key:   fmt.Appendf(nil, "patient-%03d", i%benchKeys),
			Value: v,
			Headers: []kgo.RecordHeader{
				{Key: topics.HeaderMessageID, Value: fmt.Appendf(nil, "msg-%08d", i)},
				{Key: topics.HeaderInterface, Value: []byte("ehr")},
			},
		})
	}
	return recs
}

// benchCluster starts a single-broker kfake with the input, output and
// dead-letter topics.
func benchCluster(b *testing.B) (*kfake.Cluster, []kgo.Opt) {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchPartitions, inTopic, outTopic, topics.DeadLetter("bench")))
	if err != nil {
		b.Fatal(err)
	}
	return c, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
}

// produceAll writes n records to topic with acks=all.
func produceAll(b *testing.B, cl *kgo.Client, topic string, n int, rng *rand.ChaCha8) {
	b.Helper()
	for from := 0; from < n; from += benchChunk {
		to := min(from+benchChunk, n)
		if err := cl.ProduceSync(context.Background(), benchRecords(topic, from, to, rng)...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunnerCopy measures a Runner whose processor copies each record
// to the output topic: pre-produced b.N records, timed from the moment the
// runner (already in its group, first poll in hand) may process, until a
// read_committed consumer has seen all b.N on the output.
func BenchmarkRunnerCopy(b *testing.B) {
	for _, maxRecords := range []int{100, 500} {
		b.Run(fmt.Sprintf("MaxRecords=%d", maxRecords), func(b *testing.B) {
			benchRunnerCopy(b, maxRecords)
		})
	}
}

func benchRunnerCopy(b *testing.B, maxRecords int) {
	b.ReportAllocs()
	c, opts := benchCluster(b)
	defer c.Close()
	rng := rand.NewChaCha8([32]byte{1})

	prod, err := kgo.NewClient(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		b.Fatal(err)
	}
	produceAll(b, prod, inTopic, b.N, rng)
	prod.Close()

	store, err := registry.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		b.Fatal(err)
	}

	// The processor holds its first record until the timer starts, so
	// the group join and first fetch are not measured.
	gate := make(chan struct{})
	reached := make(chan struct{})
	first := true
	proc := stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		if first { // the runner calls Process from one goroutine
			first = false
			close(reached)
			<-gate
		}
		return []stages.Envelope{{Topic: outTopic, Key: in.Key, Value: in.Value, Headers: in.Headers.Derive("bench", time.Now())}}, nil
	})
	r, err := stages.NewRunner(stages.RunnerConfig{
		Stage: "bench", Inputs: []string{inTopic}, Processor: proc, Serde: serde,
		Kafka: opts, MaxRecords: maxRecords,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	cons, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(outTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()

	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		b.Fatal("runner processed nothing within 30s")
	}
	b.ResetTimer()
	start := time.Now()
	close(gate)
	deadline := start.Add(5 * time.Minute)
	seen := 0
	for seen < b.N {
		pctx, pcancel := context.WithDeadline(context.Background(), deadline)
		fs := cons.PollFetches(pctx)
		pcancel()
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d records committed on the output after 5 minutes", seen, b.N)
		}
		seen += fs.NumRecords()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}

// BenchmarkKafkaLimit is the ceiling BenchmarkRunnerCopy is read against:
// the same records produced with acks=all to the same kind of broker by a
// plain franz-go client, no transactions and no consumer.
func BenchmarkKafkaLimit(b *testing.B) {
	b.ReportAllocs()
	c, opts := benchCluster(b)
	defer c.Close()
	rng := rand.NewChaCha8([32]byte{1})
	cl, err := kgo.NewClient(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	// Generating the values is not what is measured: make them first,
	// within a memory bound, and time only the produce.
	b.ResetTimer()
	var elapsed time.Duration
	for from := 0; from < b.N; from += benchChunk {
		to := min(from+benchChunk, b.N)
		b.StopTimer()
		recs := benchRecords(inTopic, from, to, rng)
		b.StartTimer()
		start := time.Now()
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}
