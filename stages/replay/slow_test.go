package replay_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/stages/replay"
	"github.com/careflow-health/careflow/topics"
)

// A broker slow to answer fetches of careflow.replays must not make a
// replayed letter look unreplayed: the markers are read to their end, or
// the replay fails.
func TestReplaySlowMarkersStillRefused(t *testing.T) {
	seedT := []string{topics.Raw, topics.Valid, topics.Events, topics.Audit, topics.Replays}
	for _, s := range topics.Stages {
		seedT = append(seedT, topics.DeadLetter(s))
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, seedT...))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	store, _ := registry.Open(t.TempDir())
	reg := httptest.NewServer(store)
	defer reg.Close()
	serde, _ := avro.NewSerde(context.Background(), store)
	opts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	cl, _ := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	defer cl.Close()
	fx := fixture{opts: opts, serde: serde, client: cl}
	fx.deadLetter(t, 0, avro.DeadLetter{Stage: topics.StageRoute, ErrorCode: "route.x", Interface: "ehr", OriginalTopic: topics.Events,
		OriginalPartition: 1, OriginalValue: []byte{1}, At: now})
	id := replay.ID(topics.StageRoute, 0, 0)
	ctx := context.Background()
	res, err := replay.Replay(ctx, opts, serde, replay.Request{Filter: replay.Filter{IDs: []string{id}}, By: "ann", Reason: "first"})
	if err != nil || len(res.Replayed) != 1 {
		t.Fatalf("first: %+v %v", res, err)
	}
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, topics.Replays)
	if err != nil {
		t.Fatal(err)
	}
	replaysID := [16]byte(td[topics.Replays].ID)
	// The broker is slow to answer fetches of careflow.replays (2.5s).
	cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		for _, tp := range req.(*kmsg.FetchRequest).Topics {
			if tp.Topic == topics.Replays || tp.TopicID == replaysID {
				cluster.SleepControl(func() { time.Sleep(2500 * time.Millisecond) })
			}
		}
		return nil, nil, false
	})
	res, err = replay.Replay(ctx, opts, serde, replay.Request{Filter: replay.Filter{IDs: []string{id}}, By: "bob", Reason: "second, no --again"})
	if err != nil || len(res.Replayed) != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, replay.ErrReplayed) {
		t.Fatalf("second replay without Again, markers slow to read: %+v, %v; want refused as replayed", res, err)
	}
}
