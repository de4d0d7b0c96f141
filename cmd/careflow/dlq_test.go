package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// careflow dlq: list shows what waits, with the keys a script reads and no
// patient data; show names why and where from, and the original only with
// --show-patient; replay puts a letter back once, says where, and refuses
// (exit 1) a second replay and an ingest letter; a replay with neither
// ids nor a filter, or without a reason, is a usage error.
func TestDLQCommand(t *testing.T) {
	seed := []string{topics.Raw, topics.Audit, topics.Replays}
	for _, s := range topics.Stages {
		seed = append(seed, topics.DeadLetter(s))
	}
	fx := newToolFixture(t, seed...)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(fx.cluster.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	raw, err := fx.serde.Encode(&avro.RawMessage{MessageID: "m-1", Interface: "ehr", Payload: []byte("MSH|^~\\&|EHR|HOSP\rPID|1||H1^^^HOSP||SMITH^JOHN\r")})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, dl := range []avro.DeadLetter{
		{Stage: topics.StageValidate, ErrorCode: "hl7.unsupported_message_type", ErrorLocation: "MSH-9.2", ErrorText: "validate: interface ehr does not accept ADT^A04",
			MessageID: "m-1", Interface: "ehr", OriginalTopic: topics.Raw, OriginalPartition: 1, OriginalOffset: 4, OriginalKey: []byte("H1^HOSP"),
			OriginalValue: raw, OriginalHeaders: []avro.Header{{Key: topics.HeaderMessageID, Value: []byte("m-1")}}, At: now.Add(-time.Hour)},
		{Stage: topics.StageIngest, ErrorCode: "hl7.parse", ErrorText: "ingest: no MSH segment", MessageID: "m-2", Interface: "ehr",
			OriginalValue: []byte("garbage"), At: now.Add(-time.Minute)},
	} {
		env := stages.DeadLetterEnvelope(fx.serde, &dl, dl.OriginalKey, nil)
		r := &kgo.Record{Topic: env.Topic, Key: env.Key, Value: env.Value}
		for _, h := range env.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	base := []string{"--config", "../../examples/demo/careflow.yaml", "--brokers", strings.Join(fx.cluster.ListenAddrs(), ","), "--schema-registry", fx.reg.URL}
	cli := func(args ...string) (int, string, string) {
		return runCLI(append(append([]string{"dlq"}, args...), base...)...)
	}

	code, out, errOut := cli("list", "--json")
	if code != 0 {
		t.Fatalf("dlq list --json: exit %d: %s", code, errOut)
	}
	var lines []map[string]any
	if err := json.Unmarshal([]byte(out), &lines); err != nil || len(lines) != 2 {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	for _, k := range []string{"id", "stage", "error_code", "error_text", "source_interface", "message_id", "at", "original_topic", "replays"} {
		if _, ok := lines[1][k]; !ok {
			t.Errorf("list line lacks %q: %s", k, out)
		}
	}
	if lines[0]["id"] != "ingest:0:0" || lines[1]["id"] != "validate:0:0" || strings.Contains(out, "H1^HOSP") || strings.Contains(out, "original_value") {
		t.Errorf("list --json (newest first, no patient data):\n%s", out)
	}
	if code, out, _ := cli("list", "--stage", "validate"); code != 0 || !strings.Contains(out, "validate:0:0") || strings.Contains(out, "ingest:0:0") ||
		!strings.Contains(out, "hl7.unsupported_message_type") {
		t.Errorf("list --stage validate: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("show", "validate:0:0"); code != 0 || !strings.Contains(out, "careflow.raw partition 1 offset 4") ||
		!strings.Contains(out, "MSH-9.2") || !strings.Contains(out, "careflow.message_id=m-1") || strings.Contains(out, "SMITH") {
		t.Errorf("show: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("show", "validate:0:0", "--show-patient"); code != 0 || !strings.Contains(out, "PID|1||H1^^^HOSP||SMITH^JOHN") {
		t.Errorf("show --show-patient: exit %d\n%s", code, out)
	}
	if code, _, errOut := cli("show", "validate:0:9"); code != 1 || !strings.Contains(errOut, "no dead letter has this id") {
		t.Errorf("show an unknown id: exit %d %q", code, errOut)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "validate:0:0"}, "--reason"},
		{[]string{"replay", "--reason", "x"}, "never replays everything"},
		{[]string{"replay", "validate:0:0", "--stage", "validate", "--reason", "x"}, "not both"},
		{[]string{"purge"}, "unknown dlq command"},
	} {
		if code, _, errOut := cli(tc.args...); code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("dlq %v: exit %d %q, want 2 saying %q", tc.args, code, errOut, tc.want)
		}
	}
	if code, out, _ := cli("replay", "--stage", "validate", "--dry-run"); code != 0 || !strings.Contains(out, "would replay validate:0:0 → careflow.raw partition 1") {
		t.Errorf("replay --dry-run: exit %d\n%s", code, out)
	}
	code, out, errOut = cli("replay", "validate:0:0", "--reason", "ehr accepts ADT^A04 now")
	if code != 0 || !strings.Contains(out, "replayed validate:0:0 → careflow.raw partition 1 offset 0") {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("replay", "validate:0:0", "ingest:0:0", "--reason", "again")
	if code != 1 || !strings.Contains(out, "refused validate:0:0: ") || !strings.Contains(out, "already replayed") ||
		!strings.Contains(out, "refused ingest:0:0: ") || !strings.Contains(out, "sender must correct") || !strings.Contains(errOut, "2 of 2 dead letters refused") {
		t.Errorf("second replay and an ingest letter: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := cli("list"); code != 0 || strings.Contains(out, "validate:0:0") {
		t.Errorf("list after the replay still shows it waiting: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("list", "--all"); code != 0 || !strings.Contains(out, "validate:0:0") || !strings.Contains(out, " by ") {
		t.Errorf("list --all: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("replay", "--stage", "validate", "--reason", "sweep"); code != 0 || !strings.Contains(out, "no dead letters selected") {
		t.Errorf("a filter leaves replayed letters out: exit %d\n%s", code, out)
	}
	if code, out, errOut := cli("replay", "validate:0:0", "--again", "--reason", "lab lost it"); code != 0 || !strings.Contains(out, "replayed validate:0:0 → careflow.raw partition 1 offset") {
		t.Errorf("replay --again: exit %d\n%s%s", code, out, errOut)
	}
	var copies []*kgo.Record
	if err := stages.ReadToEnd(ctx, []kgo.Opt{kgo.SeedBrokers(fx.cluster.ListenAddrs()...)}, topics.Raw, []int32{0, 1, 2}, kgo.NewOffset().AtStart(),
		func(r *kgo.Record) { copies = append(copies, r) }); err != nil {
		t.Fatal(err)
	}
	if len(copies) != 2 || copies[0].Partition != 1 || string(copies[0].Key) != "H1^HOSP" {
		t.Fatalf("%d copies on careflow.raw, want 2 on partition 1 (one replay, one --again)", len(copies))
	}
}
