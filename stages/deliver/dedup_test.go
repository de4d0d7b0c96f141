package deliver_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/deliver"
	"github.com/careflow-health/careflow/topics"
)

// A restarted deliver skips only the events its own destination already
// acknowledged: another destination's delivery, a refusal or a retry does
// not count.
func TestRebuildDedupRemembersOnlyThisDestinationsDeliveries(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.Outcomes))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	kafka := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	cl, err := kgo.NewClient(kafka...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	outcome := func(dest, status, id string) *kgo.Record {
		return &kgo.Record{Topic: topics.Outcomes, Value: []byte("v"), Headers: []kgo.RecordHeader{
			{Key: topics.HeaderDestination, Value: []byte(dest)},
			{Key: topics.HeaderOutcomeStatus, Value: []byte(status)},
			{Key: topics.HeaderMessageID, Value: []byte(id)},
		}}
	}
	for _, r := range []*kgo.Record{
		outcome("lab", avro.StatusDelivered, "e-delivered"),
		outcome("portal", avro.StatusDelivered, "e-portal-only"),
		outcome("lab", avro.StatusRejected, "e-rejected"),
		outcome("lab", avro.StatusRetrying, "e-retrying"),
		outcome("lab", avro.StatusRouted, "e-routed"),
		outcome("lab", avro.StatusDelivered, ""),
	} {
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	d := stages.NewDedup(0)
	if err := deliver.RebuildDedup(ctx, d, kafka, "lab", []int32{0}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{
		"e-delivered": true, "e-portal-only": false, "e-rejected": false, "e-retrying": false, "e-routed": false,
	} {
		if got := d.Seen(0, id); got != want {
			t.Errorf("%s remembered = %v, want %v", id, got, want)
		}
	}
	if d.Size() != 1 {
		t.Errorf("rebuilt %d keys, want 1", d.Size())
	}
}
