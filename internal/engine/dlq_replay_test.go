package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages/replay"
	"github.com/careflow-health/careflow/topics"
)

// The lab answers AE, so deliver dead-letters the A01; the lab is put
// right and the letter replayed with replay.Replay: the lab receives the
// message once, and the delivered outcome carries careflow.replay_of. A
// second replay is refused; one with Again is replayed and suppressed by
// deliver's dedup, so the lab still has it exactly once.
func TestDLQReplayDeliversOnce(t *testing.T) {
	t.Parallel() // its engine is its own
	fe := newFaultEstate(t)
	var rejecting atomic.Bool
	rejecting.Store(true)
	var received atomic.Int32 // frames the lab accepted
	lab := startFaultLab(t, fe.Lab, func(_ int, _ *hl7v2.Message) labAnswer {
		if rejecting.Load() {
			return labAnswer{Code: hl7v2.AckAE}
		}
		received.Add(1)
		return labAnswer{}
	})
	eng := startEngine(t, fe.config(t), t.TempDir())
	tail := newFaultTail(t, eng)
	c := &mllp.Client{Addr: fe.EHR}
	defer c.Close()
	faultSend(t, c, adt("A01", "DQ1", "DQ-1"), "AA")
	key := ehrKey("DQ-1")
	tail.settle([]faultSent{{key, []string{"lab"}}}, 20*time.Second)
	checkDeliverDeadLetter(t, tail, key, "lab", "ack.AE")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := []kgo.Opt{kgo.SeedBrokers(eng.Brokers()...)}
	checkCompacted(ctx, t, opts, topics.Replays)
	waiting, err := replay.List(ctx, opts, eng.Serde(), replay.Filter{Destination: "lab", NotReplayed: true})
	if err != nil || len(waiting) != 1 || waiting[0].MessageID == "" || waiting[0].Stage != topics.StageDeliver {
		t.Fatalf("dead letters waiting for lab: %+v, %v", waiting, err)
	}
	id := waiting[0].ID
	rejecting.Store(false)
	replayOnce := func(again bool) replay.Result {
		t.Helper()
		res, err := replay.Replay(ctx, opts, eng.Serde(), replay.Request{Filter: replay.Filter{IDs: []string{id}}, By: "ann", Reason: "lab fixed", Again: again})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := replayOnce(false); len(res.Replayed) != 1 {
		t.Fatalf("replay of %s: %+v", id, res)
	}
	delivered := func() (n int, replayOf string) {
		for _, r := range tail.recs[topics.Outcomes] {
			var o avro.DeliveryOutcome
			if err := eng.Serde().Decode(r.Value, &o); err != nil {
				t.Fatal(err)
			}
			if o.IdempotencyKey == key && o.Status == avro.StatusDelivered && o.Destination == "lab" {
				n++
				replayOf = faultDeadLetter{rec: r}.header(topics.HeaderReplayOf)
			}
		}
		return n, replayOf
	}
	await.For(t, 20*time.Second, 20*time.Millisecond, func() error {
		tail.poll()
		if n, of := delivered(); received.Load() != 1 || n != 1 || of != id {
			return fmt.Errorf("replayed A01: %d at the lab, %d delivered outcomes (replay_of %q)", received.Load(), n, of)
		}
		return nil
	})

	if res := replayOnce(false); len(res.Replayed) != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, replay.ErrReplayed) {
		t.Fatalf("second replay of %s: %+v, want refused as replayed", id, res)
	}
	if res := replayOnce(true); len(res.Replayed) != 1 {
		t.Fatalf("replay of %s with Again: %+v", id, res)
	}
	await.For(t, 20*time.Second, 20*time.Millisecond, func() error {
		m, err := faultMetrics(eng)
		if err != nil {
			return err
		}
		if !strings.Contains(m, `careflow_deliver_results_total{destination="lab",result="duplicate"} 1`) {
			return errors.New("deliver has not suppressed the replay with Again as a duplicate yet")
		}
		return nil
	})
	tail.poll()
	if n, _ := delivered(); received.Load() != 1 || n != 1 || len(lab.seen()) != 2 {
		t.Fatalf("after three replays: %d accepted at the lab, %d delivered outcomes, %d frames; want 1, 1 and 2 (the AE, the replay)",
			received.Load(), n, len(lab.seen()))
	}
}

// checkCompacted fails unless the engine created topic compacted.
func checkCompacted(ctx context.Context, t *testing.T, opts []kgo.Opt, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.MaybeValue() == "compact" {
			return
		}
	}
	t.Fatalf("%s is not compacted: %v", topic, rc.Configs)
}
