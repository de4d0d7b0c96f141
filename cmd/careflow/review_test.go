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
	"github.com/careflow-health/careflow/stages/patientindex"
	"github.com/careflow-health/careflow/stages/review"
	"github.com/careflow-health/careflow/topics"
)

// careflow review: list --json shows the pending item with the keys an
// analyst scripts against; show prints it; approve writes the decision
// and the held record back to careflow.valid with its review id, once; a
// second decision, an unknown id and a rejection without a reason are
// refused with a clear error and send nothing.
func TestReviewCommand(t *testing.T) {
	fx := newToolFixture(t, topics.Review, topics.Valid)
	ctx := context.Background()
	in := stages.Envelope{Topic: topics.Valid, Key: []byte("H2^HOSP"), Value: []byte("raw-record"),
		Headers: stages.Headers{{Key: topics.HeaderMessageID, Value: []byte("m-1")}}}
	x := review.Hold(avro.Review{Code: "identity_conflict", Stage: topics.StageNormalise, Reason: "PID-3[2] (NH/NHS) is a second NH/NHS identifier",
		Location: "PID-3[2]", Interface: "ehr", MessageID: "m-1", ControlID: "CON-2", MessageType: "ADT^A08", PatientKey: "H2^HOSP"}, in, time.Now())
	rec, err := review.Record(fx.serde, &x, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.client.ProduceSync(ctx, &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	base := []string{"--config", "../../examples/demo/careflow.yaml", "--brokers", strings.Join(fx.cluster.ListenAddrs(), ","), "--schema-registry", fx.reg.URL}
	cli := func(args ...string) (int, string, string) { return runCLI(append(args, base...)...) }

	code, out, errOut := cli("review", "list", "--json")
	if code != 0 {
		t.Fatalf("review list --json: exit %d: %s", code, errOut)
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); err != nil || len(items) != 1 {
		t.Fatalf("review list --json: %v\n%s", err, out)
	}
	for _, k := range []string{"review_id", "status", "code", "reason", "location", "source_interface", "message_id", "held_at"} {
		if _, ok := items[0][k]; !ok {
			t.Errorf("list item lacks %q: %s", k, out)
		}
	}
	if items[0]["review_id"] != x.ReviewID || items[0]["status"] != "pending" {
		t.Errorf("list item %v", items[0])
	}
	if code, out, _ := cli("review", "show", x.ReviewID); code != 0 || !strings.Contains(out, "identity_conflict") || !strings.Contains(out, "CON-2") {
		t.Errorf("review show: exit %d\n%s", code, out)
	}
	if code, _, errOut := cli("review", "reject", x.ReviewID); code != 2 || !strings.Contains(errOut, "--reason") {
		t.Errorf("reject without a reason: exit %d %q, want 2 asking for --reason", code, errOut)
	}
	if code, _, errOut := cli("review", "approve", "Rnone"); code != 1 || !strings.Contains(errOut, "no review item") {
		t.Errorf("approve an unknown id: exit %d %q", code, errOut)
	}
	if code, out, errOut := cli("review", "approve", x.ReviewID); code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("approve: exit %d %s %s", code, out, errOut)
	}
	if code, _, errOut := cli("review", "approve", x.ReviewID); code != 1 || !strings.Contains(errOut, "already decided") {
		t.Errorf("second approve: exit %d %q", code, errOut)
	}
	if code, _, errOut := cli("review", "reject", x.ReviewID, "--reason", "late"); code != 1 || !strings.Contains(errOut, "already decided") {
		t.Errorf("reject after approve: exit %d %q", code, errOut)
	}
	var resent []*kgo.Record
	if err := stages.ReadToEnd(ctx, []kgo.Opt{kgo.SeedBrokers(fx.cluster.ListenAddrs()...)}, topics.Valid, []int32{0, 1, 2}, kgo.NewOffset().AtStart(),
		func(r *kgo.Record) { resent = append(resent, r) }); err != nil {
		t.Fatal(err)
	}
	if len(resent) != 1 || string(resent[0].Value) != "raw-record" || string(resent[0].Key) != "H2^HOSP" {
		t.Fatalf("careflow.valid has %d records, want the held one once", len(resent))
	}
	var gotID, gotMsg string
	for _, h := range resent[0].Headers {
		switch h.Key {
		case topics.HeaderReviewID:
			gotID = string(h.Value)
		case topics.HeaderMessageID:
			gotMsg = string(h.Value)
		}
	}
	if gotID != x.ReviewID || gotMsg != "m-1" {
		t.Errorf("the resent record's headers: review %q message %q", gotID, gotMsg)
	}
	code, out, _ = cli("review", "list", "--all", "--json")
	if code != 0 || !strings.Contains(out, `"status": "approved"`) || !strings.Contains(out, `"decided_by": "`+operator()+`"`) {
		t.Errorf("list --all after approve: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("review", "list"); code != 0 || !strings.Contains(out, "nothing waits for review") {
		t.Errorf("list with nothing pending: exit %d\n%s", code, out)
	}
}

// careflow patients show finds a patient by any of its identifiers,
// follows merges to the survivor and lists every identifier with its
// source and times; an unknown identifier is a clear error.
func TestPatientsShowCommand(t *testing.T) {
	fx := newToolFixture(t, topics.Patients)
	ctx := context.Background()
	x := patientindex.New()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, m := range []patientindex.Message{
		{Interface: "ehr", MessageID: "m1", At: at, Key: "H1^HOSP", Identifiers: []patientindex.Identifier{{Value: "H1", Authority: "HOSP", Type: "MR"}, {Value: "9990000018", Authority: "NHS", Type: "NH"}}},
		{Interface: "clinic", MessageID: "m2", At: at.Add(time.Hour), Key: "C1^CLINIC", Identifiers: []patientindex.Identifier{{Value: "C1", Authority: "CLINIC", Type: "MR"}, {Value: "9990000018", Authority: "NHS", Type: "NH"}}},
		{Interface: "ehr", MessageID: "m3", At: at, Key: "H9^HOSP", Identifiers: []patientindex.Identifier{{Value: "H9", Authority: "HOSP", Type: "MR"}}},
		{Interface: "ehr", MessageID: "m4", At: at.Add(2 * time.Hour), Key: "H1^HOSP", Kind: patientindex.Merge,
			Identifiers: []patientindex.Identifier{{Value: "H1", Authority: "HOSP", Type: "MR"}}, Other: []patientindex.Identifier{{Value: "H9", Authority: "HOSP", Type: "MR"}}},
	} {
		d, err := x.Decide(m, nil)
		if err != nil || d.Hold != nil {
			t.Fatalf("decide %s: %v %+v", m.MessageID, err, d.Hold)
		}
		x.Apply(d.Changes...)
		x.Commit()
		for _, c := range d.Changes {
			if err := fx.client.ProduceSync(ctx, &kgo.Record{Topic: c.Record.Topic, Key: c.Record.Key, Value: c.Record.Value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := []string{"--config", "../../examples/demo/careflow.yaml", "--brokers", strings.Join(fx.cluster.ListenAddrs(), ",")}
	code, out, errOut := runCLI(append([]string{"patients", "show", "C1^CLINIC", "--json"}, base...)...)
	if code != 0 {
		t.Fatalf("patients show: exit %d %s", code, errOut)
	}
	var v patientView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, e := range v.Identifiers {
		ids[e.ID()] = len(e.Sources)
	}
	if v.Resolved != "H1^HOSP" || ids["H1^HOSP"] != 1 || ids["C1^CLINIC"] != 1 || ids["9990000018^NHS"] != 2 || ids["H9^HOSP"] != 1 {
		t.Errorf("patients show C1^CLINIC: key %s identifiers %v\n%s", v.Resolved, ids, out)
	}
	if len(v.Merged) != 1 || v.Merged[0] != "H9^HOSP" {
		t.Errorf("merged %v, want H9^HOSP", v.Merged)
	}
	code, out, _ = runCLI(append([]string{"patients", "show", "H9^HOSP"}, base...)...)
	if code != 0 || !strings.Contains(out, "merged into H1^HOSP") || !strings.Contains(out, "clinic") {
		t.Errorf("patients show of a merged MRN: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(append([]string{"patients", "show", "NOPE^HOSP"}, base...)...); code != 1 || !strings.Contains(errOut, "knows no identifier") {
		t.Errorf("unknown identifier: exit %d %q", code, errOut)
	}
}
