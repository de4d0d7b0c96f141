package sink_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/analytics/chtest"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/sink"
	"github.com/careflow-health/careflow/topics"
)

// BenchmarkSink measures the whole sink loop: fetch from Kafka (the
// in-process broker), decode Avro, insert into a real ClickHouse, commit.
// Each iteration a fresh consumer group reads 20 000 delivery outcomes
// (two rows each: a transition and an attempt).
// Run: go test -run '^$' -bench Sink -benchtime 3x ./stages/sink
func BenchmarkSink(b *testing.B) {
	const outcomes = 20000
	ch := chtest.Start(b)
	f := newFixture(b)
	ctx := context.Background()
	recs := make([]*kgo.Record, 0, outcomes)
	at := time.Now().UTC()
	for i := range outcomes {
		id := fmt.Sprintf("m-%06d", i)
		v, err := f.serde.Encode(&avro.DeliveryOutcome{OutcomeID: id + "/deliver/lab/delivered", MessageID: id, CorrelationID: id,
			Interface: "ehr", Destination: "lab", Stage: topics.StageDeliver, Status: avro.StatusDelivered, Attempt: 1,
			AckCode: "AA", MessageType: "ORU", TriggerEvent: "R01", IngestTime: at, At: at.Add(50 * time.Millisecond), LatencyMillis: 3})
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topics.Outcomes, Key: []byte(fmt.Sprint("P", i%500)), Value: v})
	}
	if err := f.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	groups := 0 // b.Run calls each function more than once: never reuse a group
	for _, size := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			var rows float64
			for range b.N {
				groups++
				m := sink.NewMetrics(nil)
				s, err := sink.New(sink.Config{DSN: ch.DSN("bench"), Kafka: []kgo.Opt{kgo.SeedBrokers(f.addrs...)}, Serde: f.serde,
					Group: fmt.Sprintf("careflow-sink-bench-%d", groups), BatchRows: size, BatchInterval: time.Second, Metrics: m,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); _ = s.Run(rctx) }()
				deadline := time.Now().Add(time.Minute)
				for testutil.ToFloat64(m.Rows) < 2*outcomes {
					if time.Now().After(deadline) {
						b.Fatalf("%v of %d rows after a minute", testutil.ToFloat64(m.Rows), 2*outcomes)
					}
					time.Sleep(5 * time.Millisecond)
				}
				cancel()
				<-done
				rows += testutil.ToFloat64(m.Rows)
			}
			b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
