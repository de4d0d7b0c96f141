package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/topics"
)

// toolFixture is what the reading commands (orders, exceptions) need
// around them: a broker with their topics, a schema registry over HTTP and
// a serde and client to write records with.
type toolFixture struct {
	cluster *kfake.Cluster
	reg     *httptest.Server
	serde   *avro.Serde
	client  *kgo.Client
}

func newToolFixture(t *testing.T, seed ...string) toolFixture {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, seed...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(store)
	t.Cleanup(reg.Close)
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return toolFixture{cluster: cluster, reg: reg, serde: serde, client: cl}
}

// careflow exceptions reads careflow.exceptions from Kafka (no ClickHouse):
// the last --since, one --code, as a table or as JSON lines with the keys
// the issue names.
func TestExceptionsCommand(t *testing.T) {
	fx := newToolFixture(t, topics.Exceptions)
	cluster, reg, serde, cl := fx.cluster, fx.reg, fx.serde, fx.client
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, x := range []avro.Exception{
		{Code: avro.ExceptionStaleUpdate, MessageID: "m-old", ControlID: "C1", Interface: "ehr", Reason: "older", Action: avro.ActionNotDelivered, At: now.Add(-48 * time.Hour)},
		{Code: avro.ExceptionStaleUpdate, MessageID: "m-1", ControlID: "C2", Interface: "ehr", Reason: "older than the update already applied", Action: avro.ActionNotDelivered, At: now.Add(-time.Hour)},
		{Code: "result_for_unknown_order", MessageID: "m-2", PlacerOrder: "RP9^TRAKCARE", Interface: "lab-results", Reason: "no order RP9", Action: avro.ActionDelivered, At: now.Add(-time.Minute)},
	} {
		b, err := serde.Encode(&x)
		if err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Topic: topics.Exceptions, Key: fmt.Appendf(nil, "P%d", i), Value: b, Timestamp: x.At}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	args := func(extra ...string) []string {
		return append([]string{"exceptions", "--config", "../../examples/demo/careflow.yaml",
			"--brokers", strings.Join(cluster.ListenAddrs(), ","), "--schema-registry", reg.URL}, extra...)
	}

	code, out, errOut := runCLI(args("--json")...)
	if code != 0 {
		t.Fatalf("exceptions --json exited %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines in the last 24h, want 2:\n%s", len(lines), out)
	}
	for i, want := range []string{"m-1", "m-2"} {
		var obj map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &obj); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, lines[i])
		}
		for _, k := range []string{"code", "placer_order", "message_id", "reason", "at"} {
			if _, ok := obj[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i, k, lines[i])
			}
		}
		if obj["message_id"] != want {
			t.Errorf("line %d is %v, want %s (oldest first)", i, obj["message_id"], want)
		}
		if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(obj["at"])); err != nil || at.Before(now.Add(-2*time.Hour)) {
			t.Errorf("line %d at %v (%v)", i, obj["at"], err)
		}
	}
	if code, out, _ := runCLI(args("--json", "--code", "result_for_unknown_order")...); code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"placer_order":"RP9^TRAKCARE"`) {
		t.Errorf("--code filter: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI(args("--since", "72h")...); code != 0 || !strings.Contains(out, "m-old") || !strings.Contains(out, "stale_update") || !strings.Contains(out, "REASON") {
		t.Errorf("table over 72h: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI(args("--since", "1s")...); code != 0 || !strings.Contains(out, "no exceptions in the last 1s") {
		t.Errorf("nothing in the window: exit %d\n%s", code, out)
	}
	// Nothing listening: a clear error, not a hang.
	code, _, errOut = runCLI("exceptions", "--config", "../../examples/demo/careflow.yaml", "--brokers", "127.0.0.1:1", "--schema-registry", reg.URL)
	if code != 1 || !strings.Contains(errOut, "is careflow running?") {
		t.Errorf("no Kafka: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCLI("exceptions", "--since", "0s"); code != 2 {
		t.Errorf("--since 0s: exit %d, want 2", code)
	}
}
