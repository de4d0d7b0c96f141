package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
	"github.com/careflow-health/careflow/internal/freeport"
)

const analyticsYAML = `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - {name: lab, address: 127.0.0.1:6661, sla: 1s}
routes:
  - {name: all, destination: lab, when: "true"}
analytics:
  clickhouse: {dsn: "DSN"}
`

// TestSLAAndTrace fills ClickHouse with two journeys, one late, and reads
// them back with careflow sla and careflow trace.
func TestSLAAndTrace(t *testing.T) {
	ch := chtest.Start(t)
	cfg := filepath.Join(t.TempDir(), "careflow.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(analyticsYAML, "DSN", ch.DSN("cli"), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := analytics.Open(context.Background(), ch.DSN("cli"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ingest := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Millisecond)
	var b analytics.Batch
	for id, latency := range map[string]time.Duration{"msg-fast": 200 * time.Millisecond, "msg-slow": 3 * time.Second} {
		row := func(stage, status, dest, rowID string, at time.Duration) analytics.Transition {
			return analytics.Transition{RowID: rowID, MessageID: id, CorrelationID: id, Interface: "ehr", Destination: dest,
				MessageType: "ORU", TriggerEvent: "R01", Stage: stage, Status: status, IngestTime: ingest, StageTime: ingest.Add(at)}
		}
		b.Transitions = append(b.Transitions,
			row("ingest", "accepted", "", id+"/ingest", 0),
			row("route", "routed", "lab", id+"/route/lab", 20*time.Millisecond),
			row("deliver", "delivered", "lab", id+"/deliver/lab/delivered", latency))
		b.Attempts = append(b.Attempts, analytics.Attempt{RowID: id + "/deliver/lab/delivered", MessageID: id, Interface: "ehr",
			Destination: "lab", Attempt: 1, Status: "delivered", AckCode: "AA", Latency: 7 * time.Millisecond, IngestTime: ingest, At: ingest.Add(latency)})
	}
	if err := st.Insert(context.Background(), &b); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI("sla", "--config", cfg, "--since", "1h")
	if code != 0 {
		t.Fatalf("sla exited %d: %s", code, errOut)
	}
	testSLAWithoutFlags(t, cfg, ch.DSN("cli"), out)
	var lab string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " lab ") {
			lab = strings.Join(strings.Fields(line), " ")
		}
	}
	// interface destination messages delivered p50 p95 p99 failed% rejected% backlog sla breaches
	if !strings.HasPrefix(lab, "ehr lab 2 2 ") || !strings.HasSuffix(lab, "0.0 0.0 0 1s 1") {
		t.Errorf("sla lab line = %q; want 2 messages, 2 delivered, 1 breach\n%s", lab, out)
	}
	if code, out, _ := runCLI("sla", "--config", cfg, "--since", "1m"); code != 0 || !strings.Contains(out, "no messages") {
		t.Errorf("sla over the last minute: exit %d\n%s", code, out)
	}

	code, out, errOut = runCLI("trace", "msg-slow", "--config", cfg)
	if code != 0 {
		t.Fatalf("trace exited %d: %s", code, errOut)
	}
	for _, want := range []string{"message msg-slow", "+0s  ingest", "+20ms  route", "+3s  deliver", "attempt 1, ack AA, round trip 7ms"} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := runCLI("trace", "nope", "--config", cfg); code != 1 || !strings.Contains(errOut, "not in ClickHouse") {
		t.Errorf("trace of an unknown id: exit %d, %s", code, errOut)
	}
	for _, args := range [][]string{{"trace", "--config", cfg}, {"sla", "--config", cfg, "--since", "-1h"}} {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("careflow %v exited %d; want 2", args, code)
		}
	}
}

func TestStageSinkNeedsClickHouse(t *testing.T) {
	code, _, errOut := runCLI("stage", "sink", "--config", "../../examples/demo/careflow.yaml",
		"--brokers", "127.0.0.1:1", "--schema-registry", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(errOut, "analytics.clickhouse.dsn") {
		t.Errorf("stage sink without a DSN: exit %d, %q; want 2 naming analytics.clickhouse.dsn", code, errOut)
	}
}

// testSLAWithoutFlags: `careflow sla` with no flags reads $CAREFLOW_CONFIG,
// else the configuration make run writes (data/careflow-demo.yaml under the
// working directory), else the demo's DSN; want is the output with
// --config. An unreachable ClickHouse is an error that says what was tried.
func testSLAWithoutFlags(t *testing.T, cfg, dsn, want string) {
	t.Setenv(configEnv, cfg)
	if code, out, errOut := runCLI("sla"); code != 0 || out != want {
		t.Errorf("sla with %s set: exit %d %s\n%s\nwant\n%s", configEnv, code, errOut, out, want)
	}
	if code, out, errOut := runCLI("trace", "msg-slow"); code != 0 || !strings.Contains(out, "message msg-slow") {
		t.Errorf("trace with %s set: exit %d %s\n%s", configEnv, code, errOut, out)
	}
	t.Setenv(configEnv, "")

	dir := t.TempDir()
	t.Chdir(dir)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("data", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(demoConfig, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI("sla"); code != 0 || out != want {
		t.Errorf("sla beside %s: exit %d %s\n%s\nwant\n%s", demoConfig, code, errOut, out, want)
	}
	if err := os.Remove(demoConfig); err != nil {
		t.Fatal(err)
	}

	// No configuration anywhere: the demo's DSN, without SLA targets.
	old := demoDSN
	t.Cleanup(func() { demoDSN = old })
	demoDSN = dsn
	code, out, errOut := runCLI("sla")
	if code != 0 || !strings.Contains(out, "ehr") || !strings.Contains(out, "lab") {
		t.Errorf("sla on the demo DSN: exit %d %s\n%s", code, errOut, out)
	}

	// --dsn with $CAREFLOW_CONFIG: the file's SLA targets, the flag's server.
	t.Setenv(configEnv, cfg)
	if code, out, errOut := runCLI("sla", "--dsn", dsn); code != 0 || out != want {
		t.Errorf("sla --dsn with %s set: exit %d %s\n%s\nwant\n%s", configEnv, code, errOut, out, want)
	}
}

// With no ClickHouse anywhere, sla and trace fail saying what they tried
// and how to get one; this needs no server, so it runs everywhere.
func TestSLAWithNoClickHouseSaysWhatItTried(t *testing.T) {
	t.Setenv(configEnv, "")
	t.Chdir(t.TempDir()) // no data/careflow-demo.yaml here
	old := demoDSN
	t.Cleanup(func() { demoDSN = old })
	demoDSN = "clickhouse://" + freeport.For(t) + "/careflow"
	for _, args := range [][]string{{"sla"}, {"trace", "some-id"}} {
		code, _, errOut := runCLI(args...)
		if code != 1 || !strings.Contains(errOut, "no ClickHouse to read (the local demo's default") || !strings.Contains(errOut, "make run") {
			t.Errorf("careflow %v with nothing listening: exit %d, %q; want 1 naming the default and make run", args, code, errOut)
		}
	}
	cfg := filepath.Join(t.TempDir(), "careflow.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(analyticsYAML, "DSN", demoDSN, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(configEnv, cfg)
	if code, _, errOut := runCLI("sla"); code != 1 || !strings.Contains(errOut, "analytics.clickhouse.dsn in "+cfg) {
		t.Errorf("sla with %s set and nothing listening: exit %d, %q; want 1 naming the file's DSN", configEnv, code, errOut)
	}
}
