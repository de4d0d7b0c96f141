package sink_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages/sink"
	"github.com/careflow-health/careflow/topics"
)

// TestWatchLag: a careflow group that committed 2 of 5 records on a
// partition shows a lag of 3 there, labelled with its stage; groups of
// other applications are left out.
func TestWatchLag(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := range 5 {
		r := &kgo.Record{Topic: topics.Raw, Partition: 0, Value: []byte{byte(i)}}
		if err := f.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ends, err := kadm.NewClient(f.cl).ListEndOffsets(ctx, topics.Raw)
	if err != nil {
		t.Fatal(err)
	}
	var part int32 = -1
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 5 {
			part = o.Partition
		}
	})
	if part < 0 {
		t.Fatal("no partition holds the 5 records")
	}
	adm := kadm.NewClient(f.cl)
	for _, g := range []string{"careflow-deliver-lab", "someone-else"} {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: topics.Raw, Partition: part, At: 2, LeaderEpoch: -1})
		if _, err := adm.CommitOffsets(ctx, g, offs); err != nil {
			t.Fatal(err)
		}
	}
	m := sink.NewMetrics(nil)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sink.WatchLag(wctx, f.cl, m, 50*time.Millisecond, slog.Default()) }()
	defer func() { cancel(); <-done }()
	await.For(t, 10*time.Second, 50*time.Millisecond, func() error {
		got := testutil.ToFloat64(m.Lag.WithLabelValues("deliver", "careflow-deliver-lab", topics.Raw, fmt.Sprint(part)))
		if got != 3 {
			return fmt.Errorf("lag = %v; want 3", got)
		}
		return nil
	})
	// One series per partition of the topic, for the careflow group only.
	if n := testutil.CollectAndCount(m.Lag); n != 3 {
		t.Errorf("%d lag series; want 3 (careflow-deliver-lab on 3 partitions, no other group)", n)
	}
}
