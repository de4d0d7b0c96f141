package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/stages/patientindex"
	"github.com/careflow-health/careflow/stages/review"
	"github.com/careflow-health/careflow/topics"
)

// careflow orders reads the order state store (the last changelog record
// per patient) and the exceptions about each order: as JSON lines with
// the keys the issue names, filtered by --state.
func TestOrdersCommand(t *testing.T) {
	fx := newToolFixture(t, topics.OrderState, topics.Exceptions)
	cluster, reg, serde, cl := fx.cluster, fx.reg, fx.serde, fx.client
	now := time.Now().UTC().Truncate(time.Millisecond)
	produce := func(topic, key string, value []byte) {
		t.Helper()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	patient := func(orders ...lifecycle.Order) []byte {
		b, _ := json.Marshal(lifecycle.Patient{Orders: orders})
		return b
	}
	// P1's first record is superseded by its second: the store is the last.
	produce(topics.OrderState, "P1", patient(lifecycle.Order{Placer: "RP1^TRAKCARE", State: lifecycle.Placed, Updated: now.Add(-time.Hour)}))
	produce(topics.OrderState, "P1", patient(lifecycle.Order{Placer: "RP1^TRAKCARE", Filler: "F1^LAB", State: lifecycle.Final, Updated: now, MessageID: "m3"}))
	produce(topics.OrderState, "P2", patient(lifecycle.Order{Placer: "RP2^TRAKCARE", State: lifecycle.Cancelled, Updated: now.Add(-time.Minute)}))
	// P4's order was due accepted a minute ago; P5's is due in an hour.
	produce(topics.OrderState, "P4", patient(lifecycle.Order{Placer: "RP4^TRAKCARE", State: lifecycle.Sent, Updated: now.Add(-10 * time.Minute),
		AcceptBy: now.Add(-time.Minute), ResultBy: now.Add(time.Hour)}))
	produce(topics.OrderState, "P5", patient(lifecycle.Order{Placer: "RP5^TRAKCARE", State: lifecycle.Sent, Updated: now.Add(-10 * time.Minute),
		AcceptBy: now.Add(time.Hour)}))
	x, _ := serde.Encode(&avro.Exception{Code: lifecycle.ResultAfterCancel, PatientKey: "P2", PlacerOrder: "RP2^TRAKCARE", MessageID: "m9", At: now})
	produce(topics.Exceptions, "P2", x)
	// The same number for another patient is another order.
	x, _ = serde.Encode(&avro.Exception{Code: lifecycle.StatusRegressed, PatientKey: "P3", PlacerOrder: "RP1^TRAKCARE", MessageID: "m10", At: now})
	produce(topics.Exceptions, "P3", x)

	args := func(extra ...string) []string {
		return append([]string{"orders", "--config", "../../examples/demo/careflow.yaml",
			"--brokers", strings.Join(cluster.ListenAddrs(), ","), "--schema-registry", reg.URL}, extra...)
	}
	code, out, errOut := runCLI(args("--json")...)
	if code != 0 {
		t.Fatalf("orders --json exited %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d orders, want 4:\n%s", len(lines), out)
	}
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.Contains(l, "RP4") || strings.Contains(l, "RP5") })
	var first, second map[string]any
	if json.Unmarshal([]byte(lines[0]), &first) != nil || json.Unmarshal([]byte(lines[1]), &second) != nil {
		t.Fatalf("not JSON lines:\n%s", out)
	}
	for _, k := range []string{"placer_order", "filler_order", "state", "updated_at"} {
		if _, ok := first[k]; !ok {
			t.Errorf("an order line lacks %q: %s", k, lines[0])
		}
	}
	if first["placer_order"] != "RP2^TRAKCARE" || first["state"] != "cancelled" || !strings.Contains(lines[0], lifecycle.ResultAfterCancel) {
		t.Errorf("first (oldest) order %s, want RP2 cancelled with its result_after_cancel", lines[0])
	}
	if second["placer_order"] != "RP1^TRAKCARE" || second["state"] != "final" || second["filler_order"] != "F1^LAB" || strings.Contains(lines[1], lifecycle.StatusRegressed) {
		t.Errorf("second order %s, want RP1's last state, final with its filler, and none of another patient's RP1's exceptions", lines[1])
	}
	// Without the registry the orders are still listed, and stderr says
	// the exceptions are missing.
	code, out, errOut = runCLI("orders", "--config", "../../examples/demo/careflow.yaml",
		"--brokers", strings.Join(cluster.ListenAddrs(), ","), "--schema-registry", "http://127.0.0.1:1", "--json")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(errOut, "exceptions not shown") {
		t.Errorf("orders without a registry: exit %d, %q\n%s", code, errOut, out)
	}
	if code, out, _ := runCLI(args("--state", "final")...); code != 0 || !strings.Contains(out, "RP1^TRAKCARE") || strings.Contains(out, "RP2") {
		t.Errorf("--state final: exit %d\n%s", code, out)
	}
	// --late: only the order past its deadline, saying which.
	code, out, _ = runCLI(args("--late", "--json")...)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"placer_order":"RP4^TRAKCARE"`) || !strings.Contains(out, `"late":["late_acceptance"]`) {
		t.Errorf("--late: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(args("--state", "finished")...); code != 2 || !strings.Contains(errOut, "want one of") {
		t.Errorf("--state finished: exit %d, %q", code, errOut)
	}
}

// The demo's summary of what careflow holds: orders by state in lifecycle
// order, exceptions by code, and identity: patients, merges, items held
// for review and distinct unmapped codes.
func TestCareflowSummary(t *testing.T) {
	fx := newToolFixture(t, topics.OrderState, topics.Exceptions, topics.Patients, topics.Review)
	produce := func(topic, key string, value []byte) {
		t.Helper()
		if err := fx.client.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(lifecycle.Patient{Orders: []lifecycle.Order{{Placer: "A", State: lifecycle.Final}, {Placer: "B", State: lifecycle.Placed}}})
	produce(topics.OrderState, "P1", b)
	b, _ = json.Marshal(lifecycle.Patient{Orders: []lifecycle.Order{{Placer: "C", State: lifecycle.Final}}})
	produce(topics.OrderState, "P2", b)
	x, _ := fx.serde.Encode(&avro.Exception{Code: lifecycle.OrderRejected, PlacerOrder: "B"})
	produce(topics.Exceptions, "P1", x)
	for _, code := range []string{"GLU", "GLU", "NA"} {
		x, _ = fx.serde.Encode(&avro.Exception{Code: "unmapped_code", Interface: "lab-results", CodingSystem: "L", CodedValue: code})
		produce(topics.Exceptions, "P1", x)
	}
	for _, p := range []patientindex.PatientEntry{{Key: "P1"}, {Key: "P2"}, {Key: "P3", MergedInto: "P1"}} {
		b, _ := json.Marshal(p)
		produce(topics.Patients, "patient/"+p.Key, b)
	}
	held := review.Hold(avro.Review{Code: "identity_conflict", MessageID: "m9"}, stages.Envelope{Topic: topics.Valid}, time.Now())
	x, _ = fx.serde.Encode(&held)
	produce(topics.Review, held.ReviewID, x)
	cfg := &config.Config{Kafka: config.Kafka{Brokers: fx.cluster.ListenAddrs()}, Admin: config.Admin{Listen: strings.TrimPrefix(fx.reg.URL, "http://")}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := strings.Join(careflowSummary(cfg)(ctx), "\n")
	for _, want := range []string{"careflow orders          placed 1  final 2", "careflow exceptions      order_rejected 1  unmapped_code 3",
		"careflow identity        patients 2  merged 1  held for review 1  unmapped codes 2"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}
