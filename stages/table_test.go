package stages_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/stages"
)

// writeTxn writes kvs (key → value, nil a tombstone) to partition p of
// topic in one transaction, committed or aborted.
func writeTxn(t *testing.T, h *harness, topic string, p int32, commit bool, kvs ...[2]string) {
	t.Helper()
	cl, err := kgo.NewClient(append(h.opts, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("table-test-"+time.Now().String()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		r := &kgo.Record{Topic: topic, Partition: p, Key: []byte(kv[0])}
		if kv[1] != "<nil>" {
			r.Value = []byte(kv[1])
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

func get(tb *stages.Table, p int32, key string) string {
	v, ok := tb.Get(p, key)
	if !ok {
		return "<none>"
	}
	return string(v)
}

// Restore keeps the last committed value of each key, on its own
// partition; aborted writes and tombstoned keys are not restored.
func TestTableRestore(t *testing.T) {
	h := newHarness(t, 2)
	writeTxn(t, h, outTopic, 0, true, [2]string{"p1", "v1"}, [2]string{"p2", "v1"}, [2]string{"p3", "v1"})
	writeTxn(t, h, outTopic, 0, true, [2]string{"p1", "v2"}, [2]string{"p3", "<nil>"})
	writeTxn(t, h, outTopic, 0, false, [2]string{"p2", "aborted"})
	writeTxn(t, h, outTopic, 1, true, [2]string{"q1", "w1"})
	tb := stages.NewTable(outTopic)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tb.Restore(ctx, h.opts, []int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p        int32
		key, val string
	}{{0, "p1", "v2"}, {0, "p2", "v1"}, {0, "p3", "<none>"}, {1, "q1", "w1"}, {1, "p1", "<none>"}} {
		if got := get(tb, tc.p, tc.key); got != tc.val {
			t.Errorf("partition %d key %s = %s, want %s", tc.p, tc.key, got, tc.val)
		}
	}
	if tb.Len() != 3 {
		t.Errorf("Len = %d, want 3", tb.Len())
	}
	// Restoring one partition leaves the other as it was.
	tb.Forget([]int32{1})
	if err := tb.Restore(ctx, h.opts, []int32{1}); err != nil || get(tb, 1, "q1") != "w1" || get(tb, 0, "p1") != "v2" {
		t.Fatalf("restore of partition 1 alone: %v, q1=%s p1=%s", err, get(tb, 1, "q1"), get(tb, 0, "p1"))
	}
}

// A Put is visible to the processor at once, kept by Commit and forgotten
// by Abort, like the changelog record it returns.
func TestTableFollowsTheTransaction(t *testing.T) {
	tb := stages.NewTable("careflow.state.test")
	env := tb.Put(0, "p1", []byte("v1"), nil)
	if env.Topic != "careflow.state.test" || string(env.Key) != "p1" || string(env.Value) != "v1" {
		t.Fatalf("changelog record %+v", env)
	}
	if get(tb, 0, "p1") != "v1" {
		t.Fatal("an open transaction's Put is not visible")
	}
	var states stages.TxnStates = []stages.TxnState{tb}
	states.Commit()
	tb.Put(0, "p1", []byte("v2"), nil)
	tb.Put(0, "p2", []byte("v1"), nil)
	states.Abort()
	if get(tb, 0, "p1") != "v1" || get(tb, 0, "p2") != "<none>" {
		t.Fatalf("after abort p1=%s p2=%s, want v1 and none", get(tb, 0, "p1"), get(tb, 0, "p2"))
	}
	tb.Forget([]int32{0})
	if get(tb, 0, "p1") != "<none>" {
		t.Fatal("Forget kept a partition's state")
	}
}

// A changelog that does not exist (never written, or deleted) restores
// nothing and is not an error: state starts again from the next records.
func TestTableRestoreMissingTopic(t *testing.T) {
	h := newHarness(t, 1)
	tb := stages.NewTable("careflow.state.never-written")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tb.Restore(ctx, h.opts, []int32{0}); err != nil || tb.Len() != 0 {
		t.Fatalf("Restore of a missing topic: %v, %d keys", err, tb.Len())
	}
}

// A Change is only decided: the state changes when it is applied, so a
// processor that fails after deciding (and is retried) never sees its
// failed attempt's state.
func TestTableChangeIsAppliedOnlyWhenAsked(t *testing.T) {
	tb := stages.NewTable("careflow.state.test")
	c := tb.Change(0, "p1", []byte("v1"), nil)
	if get(tb, 0, "p1") != "<none>" {
		t.Fatal("a Change altered the state before Apply")
	}
	if c.Record.Topic != "careflow.state.test" || string(c.Record.Key) != "p1" || string(c.Record.Value) != "v1" {
		t.Fatalf("changelog record %+v", c.Record)
	}
	tb.Apply(c)
	if get(tb, 0, "p1") != "v1" {
		t.Fatal("Apply did not set the state")
	}
	tb.Abort()
	if get(tb, 0, "p1") != "<none>" {
		t.Fatal("an applied change outlived its aborted transaction")
	}
}

// A nil value deletes a key: the open transaction sees it gone at once,
// the commit drops it, and an abort brings it back.
func TestTableDelete(t *testing.T) {
	tb := stages.NewTable("careflow.state.test")
	tb.Put(0, "k", []byte("v"), nil)
	tb.Commit()
	c := tb.Change(0, "k", nil, nil)
	if c.Record.Value != nil {
		t.Fatalf("the changelog record of a delete has value %q, want a tombstone", c.Record.Value)
	}
	tb.Apply(c)
	if _, ok := tb.Get(0, "k"); ok {
		t.Error("deleted key still found in its transaction")
	}
	tb.Abort()
	if v, ok := tb.Get(0, "k"); !ok || string(v) != "v" {
		t.Errorf("after the abort: %q, %v; want v back", v, ok)
	}
	tb.Apply(c)
	tb.Commit()
	if _, ok := tb.Get(0, "k"); ok || tb.Len() != 0 {
		t.Errorf("after the commit: found %v, %d keys; want none", ok, tb.Len())
	}
}
