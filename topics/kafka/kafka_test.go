package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/topics"
)

// EnsureTopics creates the state topics compacted and the rest not, and
// CheckCoPartitioned refuses topics whose partition counts differ (an
// events topic created by hand with more partitions than the state that
// follows it).
func TestTopicsAndPartitionCounts(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, cl, 6, 1, 1<<20, topics.Events, topics.OrderState); err != nil {
		t.Fatal(err)
	}
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topics.Events, topics.OrderState)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		policy := ""
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy = *c.Value
			}
		}
		if want := map[string]string{topics.Events: "delete", topics.OrderState: "compact"}[rc.Name]; policy != want {
			t.Errorf("%s cleanup.policy = %q, want %q", rc.Name, policy, want)
		}
	}
	if err := CheckCoPartitioned(ctx, cl, topics.Events, topics.OrderState); err != nil {
		t.Fatalf("topics careflow created disagree: %v", err)
	}
	// An operator created careflow.raw with 12 partitions before careflow.
	if err := EnsureTopics(ctx, cl, 12, 1, 1<<20, topics.Raw); err != nil {
		t.Fatal(err)
	}
	err = CheckCoPartitioned(ctx, cl, topics.Events, topics.OrderState, topics.Raw)
	if err == nil || !strings.Contains(err.Error(), "careflow.raw has 12 partitions but careflow.events has 6") {
		t.Fatalf("CheckCoPartitioned = %v, want it to name careflow.raw's 12 against 6", err)
	}
}
