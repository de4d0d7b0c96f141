package route

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

var routeTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

type harness struct {
	stage *Stage
	serde *avro.Serde
	reg   *prometheus.Registry
	logs  *bytes.Buffer
}

func newHarness(t testing.TB, routes []Route) *harness {
	t.Helper()
	return newHarnessWith(t, routes, nil)
}

// newHarnessWith is newHarness with the Config changed by edit (a clock, a
// logger) before New.
func newHarnessWith(t testing.TB, routes []Route, edit func(*Config)) *harness {
	t.Helper()
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{serde: serde, reg: prometheus.NewRegistry(), logs: new(bytes.Buffer)}
	cfg := Config{
		Routes:  routes,
		Serde:   serde,
		Now:     func() time.Time { return routeTime },
		Metrics: h.reg,
		Logger:  slog.New(slog.NewTextHandler(h.logs, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	h.stage, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// input frames ev as the runner would hand it to the stage.
func (h *harness) input(t testing.TB, ev *avro.ClinicalEvent) stages.Envelope {
	t.Helper()
	b, err := h.serde.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	var hd stages.Headers
	hd.Set(topics.HeaderMessageID, ev.EventID)
	hd.Set(topics.HeaderInterface, ev.Provenance.Interface)
	return stages.Envelope{Topic: topics.Events, Key: []byte("MRN001^HOSP"), Value: b, Headers: hd, Partition: 3, Offset: 42}
}

// split separates outbound records from decoded outcomes.
func (h *harness) split(t *testing.T, out []stages.Envelope) (outbound []stages.Envelope, outcomes []avro.DeliveryOutcome) {
	t.Helper()
	for _, e := range out {
		if e.Topic == topics.Outcomes {
			var o avro.DeliveryOutcome
			if err := h.serde.Decode(e.Value, &o); err != nil {
				t.Fatalf("outcome does not decode: %v", err)
			}
			outcomes = append(outcomes, o)
			continue
		}
		outbound = append(outbound, e)
	}
	return outbound, outcomes
}

func destinations(outbound []stages.Envelope) []string {
	var ds []string
	for _, e := range outbound {
		ds = append(ds, topics.DestinationOf(e.Topic))
	}
	slices.Sort(ds)
	return ds
}

func TestDemoRoutes(t *testing.T) {
	h := newHarness(t, demoRoutes)
	tests := []struct {
		name string
		ev   *avro.ClinicalEvent
		want []string
	}{
		{"ORM order", order("ORM", "O01"), []string{"lab"}},
		{"OML order", order("OML", "O21"), []string{"lab"}},
		{"A01 admit", adt("A01"), []string{"lab", "portal"}},
		{"A03 discharge", adt("A03"), []string{"portal"}},
		{"A04 register", adt("A04"), []string{"lab", "portal"}},
		{"A08 update", adt("A08"), []string{"lab", "portal"}},
		{"A28 person add", adt("A28"), []string{"lab"}},
		{"A31 person update", adt("A31"), []string{"lab"}},
		{"A40 merge", adt("A40"), []string{"lab"}},
		{"A02 transfer", adt("A02"), nil},
		{"final result from lab-results", result("lab-results", "F", "F"), []string{"ehr-results", "portal"}},
		{"partial result from lab-results", result("lab-results", "F", "P"), []string{"ehr-results"}},
		{"final result from another interface", result("poct", "F"), []string{"portal"}},
		{"result without orders", result("poct"), nil},
		{"ORU R30", func() *avro.ClinicalEvent { e := result("lab-results", "P"); e.TriggerEvent = "R30"; return e }(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := h.stage.Process(context.Background(), h.input(t, tc.ev))
			if err != nil {
				t.Fatal(err)
			}
			outbound, outcomes := h.split(t, out)
			if got := destinations(outbound); !slices.Equal(got, tc.want) {
				t.Errorf("destinations = %v, want %v", got, tc.want)
			}
			if len(tc.want) == 0 {
				if len(outcomes) != 1 || outcomes[0].Status != avro.StatusUnrouted {
					t.Errorf("outcomes = %+v, want one unrouted", outcomes)
				}
			} else if len(outcomes) != len(tc.want) {
				t.Errorf("%d outcomes, want %d", len(outcomes), len(tc.want))
			}
		})
	}
}

func TestFanOut(t *testing.T) {
	h := newHarness(t, demoRoutes)
	ev := result("lab-results", "F")
	in := h.input(t, ev)
	out, err := h.stage.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	outbound, outcomes := h.split(t, out)
	if len(outbound) != 2 || len(outcomes) != 2 {
		t.Fatalf("%d outbound and %d outcomes, want 2 and 2", len(outbound), len(outcomes))
	}
	for _, e := range outbound {
		dest := topics.DestinationOf(e.Topic)
		if !bytes.Equal(e.Key, in.Key) || !bytes.Equal(e.Value, in.Value) {
			t.Errorf("%s: key or value changed; the event is forwarded unchanged", e.Topic)
		}
		if got := e.Headers.Get(topics.HeaderDestination); got != dest {
			t.Errorf("%s: destination header %q", e.Topic, got)
		}
		if got := e.Headers.Get(topics.StageTime(topics.StageRoute)); got != "2024-05-06T07:08:09.000Z" {
			t.Errorf("%s: stage time header %q", e.Topic, got)
		}
		if got := e.Headers.Get(topics.HeaderMessageID); got != ev.EventID {
			t.Errorf("%s: message id header %q not inherited", e.Topic, got)
		}
	}
	if in.Headers.Get(topics.HeaderDestination) != "" {
		t.Error("input headers were modified")
	}
	for _, o := range outcomes {
		want := avro.DeliveryOutcome{
			OutcomeID:      ev.EventID + "/route/" + o.Destination,
			MessageID:      ev.EventID,
			CorrelationID:  ev.CorrelationID,
			IdempotencyKey: ev.IdempotencyKey,
			Interface:      "lab-results",
			Destination:    o.Destination,
			Stage:          topics.StageRoute,
			Status:         avro.StatusRouted,
			ControlID:      identity.ControlID(ev.EventID, o.Destination),
			MessageType:    "ORU",
			TriggerEvent:   "R01",
			IngestTime:     ev.Provenance.IngestTime,
			At:             routeTime,
			Routes:         map[string][]string{"ehr-results": {"ehr-results"}, "portal": {"portal-final-results"}}[o.Destination],
			SLAMillis:      map[string]int64{"ehr-results": 60_000, "portal": 120_000}[o.Destination],
		}
		if !o.IngestTime.Equal(want.IngestTime) || !o.At.Equal(want.At) {
			t.Errorf("outcome times %v %v", o.IngestTime, o.At)
		}
		o.IngestTime, o.At, want.IngestTime, want.At = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(o, want) {
			t.Errorf("outcome\n got %+v\nwant %+v", o, want)
		}
	}
	if got := testutil.ToFloat64(h.stage.metrics.routed.WithLabelValues("portal", "portal-final-results")); got != 1 {
		t.Errorf("careflow_route_total{portal} = %v", got)
	}
}

func TestDestinationDedup(t *testing.T) {
	routes := []Route{
		{Name: "first", Destination: "lab", When: `event.message_type == "ADT"`},
		{Name: "second", Destination: "lab", When: `event.trigger_event == "A01"`},
		{Name: "other", Destination: "portal", When: `event.trigger_event == "A01"`},
	}
	h := newHarness(t, routes)
	out, err := h.stage.Process(context.Background(), h.input(t, adt("A01")))
	if err != nil {
		t.Fatal(err)
	}
	outbound, outcomes := h.split(t, out)
	if got := destinations(outbound); !slices.Equal(got, []string{"lab", "portal"}) {
		t.Errorf("destinations = %v, want one lab and one portal", got)
	}
	if len(outcomes) != 2 {
		t.Errorf("%d outcomes, want 2", len(outcomes))
	}
	if got := testutil.ToFloat64(h.stage.metrics.routed.WithLabelValues("lab", "first")); got != 1 {
		t.Errorf("lab counted for route first %v times, want 1", got)
	}
	if got := testutil.ToFloat64(h.stage.metrics.routed.WithLabelValues("lab", "second")); got != 0 {
		t.Errorf("lab counted for route second %v times, want 0 (first route wins)", got)
	}
}

func TestUnrouted(t *testing.T) {
	h := newHarness(t, demoRoutes)
	ev := adt("A02")
	out, err := h.stage.Process(context.Background(), h.input(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Topic != topics.Outcomes {
		t.Fatalf("outputs %+v, want one outcome", out)
	}
	if string(out[0].Key) != "MRN001^HOSP" {
		t.Errorf("outcome key %q", out[0].Key)
	}
	_, outcomes := h.split(t, out)
	o := outcomes[0]
	if o.Status != avro.StatusUnrouted || o.OutcomeID != ev.EventID+"/route/unrouted" || o.Destination != "" || o.Stage != topics.StageRoute {
		t.Errorf("outcome %+v", o)
	}
	if got := testutil.ToFloat64(h.stage.metrics.unrouted); got != 1 {
		t.Errorf("careflow_route_unrouted_total = %v", got)
	}
}

func TestRuntimeError(t *testing.T) {
	routes := []Route{
		{Name: "by-first-order", Destination: "lab", When: `event.orders[0].service_code == "FBC"`},
		{Name: "all-adt", Destination: "portal", When: `event.message_type == "ADT"`},
	}
	h := newHarness(t, routes)

	// With an order the condition works.
	ord := order("ORM", "O01")
	out, err := h.stage.Process(context.Background(), h.input(t, ord))
	if err != nil {
		t.Fatal(err)
	}
	if ob, _ := h.split(t, out); !slices.Equal(destinations(ob), []string{"lab"}) {
		t.Fatalf("destinations %v", destinations(ob))
	}

	// Without one it fails: no match for that route, an error outcome, the
	// other route unaffected.
	ev := adt("A01")
	out, err = h.stage.Process(context.Background(), h.input(t, ev))
	if err != nil {
		t.Fatalf("a failing condition must not fail the record: %v", err)
	}
	outbound, outcomes := h.split(t, out)
	if got := destinations(outbound); !slices.Equal(got, []string{"portal"}) {
		t.Errorf("destinations = %v, want [portal]", got)
	}
	var errOutcome *avro.DeliveryOutcome
	for i := range outcomes {
		if outcomes[i].ErrorCode == CodeEvalError {
			errOutcome = &outcomes[i]
		}
	}
	if errOutcome == nil {
		t.Fatalf("no %s outcome in %+v", CodeEvalError, outcomes)
	}
	if errOutcome.OutcomeID != ev.EventID+"/route/error/by-first-order" || errOutcome.Destination != "lab" ||
		errOutcome.ErrorText != `route "by-first-order" condition: index out of bounds` {
		t.Errorf("error outcome %+v", errOutcome)
	}
	if got := testutil.ToFloat64(h.stage.metrics.evalErrors.WithLabelValues("by-first-order")); got != 1 {
		t.Errorf("careflow_route_eval_errors_total{by-first-order} = %v", got)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "by-first-order") {
		t.Errorf("no warning naming the route: %s", logs)
	}
	for _, phi := range []string{"Lovelace", "MRN001", "18151210"} {
		if strings.Contains(logs, phi) || strings.Contains(errOutcome.ErrorText, phi) {
			t.Errorf("patient data %q in log or outcome", phi)
		}
	}

	// When the failing route was the only candidate, the event is also
	// recorded as unrouted.
	h2 := newHarness(t, routes[:1])
	out, err = h2.stage.Process(context.Background(), h2.input(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	_, outcomes = h2.split(t, out)
	if len(outcomes) != 2 || outcomes[1].OutcomeID != ev.EventID+"/route/unrouted" {
		t.Errorf("outcomes %+v, want the error and an unrouted outcome", outcomes)
	}
}

// TestNoEncounter: a condition on the encounter, unguarded, is false for
// an event without one; it is not an error on every such event.
func TestNoEncounter(t *testing.T) {
	routes := []Route{{Name: "inpatients", Destination: "bed-board", When: `event.encounter.patient_class == "I"`}}
	h := newHarness(t, routes)
	ev := adt("A01")
	ev.Encounter = nil
	out, err := h.stage.Process(context.Background(), h.input(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	outbound, outcomes := h.split(t, out)
	if len(outbound) != 0 || len(outcomes) != 1 || outcomes[0].Status != avro.StatusUnrouted || outcomes[0].ErrorCode != "" {
		t.Errorf("outbound %v, outcomes %+v; want only an unrouted outcome", destinations(outbound), outcomes)
	}
	if got := testutil.ToFloat64(h.stage.metrics.evalErrors.WithLabelValues("inpatients")); got != 0 {
		t.Errorf("careflow_route_eval_errors_total = %v, want 0", got)
	}
}

func TestCostLimit(t *testing.T) {
	routes := []Route{{Name: "quadratic", Destination: "x",
		When: `event.observations.all(a, event.observations.all(b, a.set_id == b.set_id || true))`}}
	h := newHarness(t, routes)
	ev := result("lab-results")
	for range 500 {
		ev.Observations = append(ev.Observations, avro.Observation{SetID: "1", OrderIndex: -1})
	}
	out, err := h.stage.Process(context.Background(), h.input(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	_, outcomes := h.split(t, out)
	if len(outcomes) == 0 || outcomes[0].ErrorCode != CodeEvalError || !strings.Contains(outcomes[0].ErrorText, "cost limit") {
		t.Errorf("outcomes %+v, want a cost-limit eval error", outcomes)
	}
}

func TestProcessErrors(t *testing.T) {
	h := newHarness(t, demoRoutes)
	_, err := h.stage.Process(context.Background(), stages.Envelope{Topic: topics.Events, Value: []byte("MSH|^~\\&|")})
	if stages.KindOf(err) != stages.KindPermanent {
		t.Fatalf("undecodable input: kind %v (%v), want permanent", stages.KindOf(err), err)
	}
	if code, _, _ := stages.Describe(err); code != CodeDecode {
		t.Errorf("code %q, want %q", code, CodeDecode)
	}

	// A record of another type is permanent too.
	b, err := h.serde.Encode(&avro.DeliveryOutcome{OutcomeID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.stage.Process(context.Background(), stages.Envelope{Topic: topics.Events, Value: b})
	var wt *avro.WrongTypeError
	if stages.KindOf(err) != stages.KindPermanent || !errors.As(err, &wt) {
		t.Errorf("wrong record type: %v", err)
	}

	// A cancelled context is transient, never a silent non-match.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = h.stage.Process(ctx, h.input(t, result("lab-results", "F")))
	if err == nil || stages.KindOf(err) != stages.KindTransient {
		t.Errorf("cancelled: %v, want a transient error", err)
	}
}

func TestNewErrors(t *testing.T) {
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Serde: serde, Routes: []Route{
		{Name: "a", Destination: "lab", When: `event.message_type == `},
		{Name: "a", Destination: "lab", When: `true`},
		{Name: "b", Destination: "", When: `true`},
		{Name: "c", Destination: "lab", When: `event.trigger_event`},
		{Name: "d", Destination: "lab", When: `event.trigger_evnt == "A01"`},
		{Name: "", Destination: "lab", When: `true`},
	}})
	if err == nil {
		t.Fatal("New succeeded")
	}
	for _, want := range []string{`route "a": Syntax error: mismatched input '<EOF>' at column 23`, `route "a": name used twice`, `route "b": destination is empty`, `route "c": route condition must return bool, not string`, `route "d": undefined field 'trigger_evnt' (did you mean 'trigger_event'?)`, "route 6: name is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %q:\n%v", want, err)
		}
	}
	if _, err := New(Config{Routes: demoRoutes}); err == nil {
		t.Error("New without a serde succeeded")
	}
	// Two stages on one registry (a reload) share the series.
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := New(Config{Serde: serde, Routes: demoRoutes, Metrics: reg}); err != nil {
			t.Fatalf("second New on the same registry: %v", err)
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	h := newHarness(b, demoRoutes)
	in := h.input(b, result("lab-results", "F", "F"))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.stage.Process(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluate is the conditions alone: the demo routes against one
// final result, without decoding or outcomes.
func BenchmarkEvaluate(b *testing.B) {
	h := newHarness(b, demoRoutes)
	ev := result("lab-results", "F", "F")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := h.stage.evaluate(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// When several routes send an event to one destination, the routed
// outcome names them all, in configuration order, with the tightest SLA:
// analytics measures the delivery against it without evaluating routes.
func TestRoutedOutcomeRecordsRoutesAndSLA(t *testing.T) {
	routes := []Route{
		{Name: "all-adt", Destination: "lab", When: `event.message_type == "ADT"`, SLA: 5 * time.Minute},
		{Name: "admits", Destination: "lab", When: `event.trigger_event == "A01"`, SLA: time.Minute},
		{Name: "never", Destination: "lab", When: `false`, SLA: time.Second},
	}
	h := newHarness(t, routes)
	out, err := h.stage.Process(context.Background(), h.input(t, newEvent("ADT", "A01", "admit")))
	if err != nil {
		t.Fatal(err)
	}
	outbound, outcomes := h.split(t, out)
	if len(outbound) != 1 || len(outcomes) != 1 {
		t.Fatalf("%d outbound, %d outcomes; want the event once to lab", len(outbound), len(outcomes))
	}
	if o := outcomes[0]; !reflect.DeepEqual(o.Routes, []string{"all-adt", "admits"}) || o.SLAMillis != 60_000 {
		t.Errorf("routes %v, SLA %d ms; want [all-adt admits] and the tightest, 60000", o.Routes, o.SLAMillis)
	}
}
