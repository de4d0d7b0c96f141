package analytics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// journey is one message's rows: accepted, routed to dest, then delivered
// after latency (or rejected when rejected is set).
func journey(b *analytics.Batch, id, dest string, latency time.Duration, rejected bool) {
	ingest := t0
	tr := func(stage, status, d string, at time.Time, rowID string) analytics.Transition {
		return analytics.Transition{RowID: rowID, MessageID: id, CorrelationID: id, Interface: "ehr", Destination: d,
			MessageType: "ADT", TriggerEvent: "A01", PatientHash: "ab", Stage: stage, Status: status,
			IngestTime: ingest, StageTime: at}
	}
	b.Transitions = append(b.Transitions,
		tr("ingest", "accepted", "", ingest, id+"/ingest"),
		tr("route", "routed", dest, ingest.Add(time.Millisecond), id+"/route/"+dest))
	if latency == 0 {
		return
	}
	status, code := "delivered", ""
	if rejected {
		status, code = "rejected", "AE"
	}
	last := tr("deliver", status, dest, ingest.Add(latency), id+"/deliver/"+dest+"/"+status)
	last.ErrorCode = code
	b.Transitions = append(b.Transitions, last)
	b.Attempts = append(b.Attempts, analytics.Attempt{RowID: last.RowID, MessageID: id, CorrelationID: id,
		Interface: "ehr", Destination: dest, Attempt: 1, Status: status, AckCode: map[bool]string{true: "AE", false: "AA"}[rejected],
		Latency: 5 * time.Millisecond, IngestTime: ingest, At: ingest.Add(latency)})
}

func TestModelCollapsesReplaysAndReports(t *testing.T) {
	ch := chtest.Start(t)
	ctx := context.Background()
	st, err := analytics.Open(ctx, ch.DSN("careflow_test"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.Version(ctx); err != nil || v != analytics.SchemaVersion() {
		t.Fatalf("schema version = %d, %v; want %d", v, err, analytics.SchemaVersion())
	}
	// A second start migrates nothing and fails nothing.
	st2, err := analytics.Open(ctx, ch.DSN("careflow_test"))
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	st2.Close()

	var b analytics.Batch
	journey(&b, "m1", "lab", 100*time.Millisecond, false)
	journey(&b, "m2", "lab", 2*time.Second, false) // later than the 1s SLA
	journey(&b, "m3", "lab", 300*time.Millisecond, true)
	journey(&b, "m4", "lab", 0, false) // pending for ever: backlog and breach
	journey(&b, "m5", "portal", 4*time.Second, false)
	// m5's route set a tighter SLA than portal's 10s.
	b.SLAs = append(b.SLAs, analytics.MessageSLA{MessageID: "m5", Destination: "portal", Route: "results", SLA: 3 * time.Second, At: t0})
	b.DeadLetters = append(b.DeadLetters, analytics.DeadLetter{RowID: "careflow.dlq.deliver/0/7", Stage: "deliver",
		ErrorCode: "AE", ErrorText: "destination lab rejected", MessageID: "m3", CorrelationID: "m3", Interface: "ehr", At: t0.Add(time.Second)})
	b.Reviews = append(b.Reviews,
		analytics.Review{RowID: "R1/pending", ReviewID: "R1", Status: "pending", Code: "identity_conflict", HeldAt: t0},
		analytics.Review{RowID: "R1/rejected", ReviewID: "R1", Status: "rejected", Code: "identity_conflict", HeldAt: t0,
			DecidedBy: "alice", DecidedAt: t0.Add(time.Minute), DecisionReason: "wrong patient"})
	// The sink's replay: the same batch twice.
	for range 2 {
		if err := st.Insert(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.Count(ctx, "transitions"); err != nil || n != uint64(len(b.Transitions)) {
		t.Fatalf("transitions after a replay = %d, %v; want %d", n, err, len(b.Transitions))
	}

	rows, err := st.SLA(ctx, analytics.Filter{}, analytics.Targets{"lab": time.Second, "portal": 10 * time.Second}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]analytics.SLARow{}
	for _, r := range rows {
		got[r.Interface+"/"+r.Destination] = r
	}
	lab := got["ehr/lab"]
	want := analytics.SLARow{Interface: "ehr", Destination: "lab", Messages: 4, Delivered: 2, Rejected: 1, Backlog: 1, Breaches: 2}
	if lab.Messages != want.Messages || lab.Delivered != want.Delivered || lab.Rejected != want.Rejected ||
		lab.Backlog != want.Backlog || lab.Breaches != want.Breaches {
		t.Errorf("lab row = %+v; want %+v", lab, want)
	}
	if lab.P50 < 100*time.Millisecond || lab.P99 > 2*time.Second || lab.P99 < time.Second {
		t.Errorf("lab quantiles p50 %v p99 %v; want between 100ms and 2s", lab.P50, lab.P99)
	}
	if p := got["ehr/portal"]; p.Breaches != 1 {
		t.Errorf("portal breaches = %d; want 1 (the route's 3s SLA, not the destination's 10s)", p.Breaches)
	}
	if p := got["ehr/"]; p.Messages != 5 {
		t.Errorf("pre-routing row messages = %d; want 5", p.Messages)
	}

	only, err := st.SLA(ctx, analytics.Filter{Destination: "portal", Since: t0.Add(-time.Minute)}, nil, t0)
	if err != nil || len(only) != 1 || only[0].Breaches != 1 {
		t.Errorf("filtered report without destination targets = %+v, %v; want one portal row, breached by its route's SLA", only, err)
	}

	var by, why string
	if err := st.QueryRowForTest(ctx, "SELECT decided_by, decision_reason FROM reviews FINAL WHERE status = 'rejected'").Scan(&by, &why); err != nil || by != "alice" || why != "wrong patient" {
		t.Errorf("the review decision in ClickHouse: %q %q %v; want alice's, with her reason", by, why, err)
	}
	if n, err := st.Count(ctx, "reviews"); err != nil || n != 2 {
		t.Errorf("reviews after a replay = %d, %v; want 2 (held, decided)", n, err)
	}

	var late string
	var sla int64
	if err := st.QueryRowForTest(ctx, "SELECT message_id, sla_ms FROM sla_breaches").Scan(&late, &sla); err != nil || late != "m5" || sla != 3000 {
		t.Errorf("sla_breaches = %s %d, %v; want m5 against its route's 3000 ms", late, sla, err)
	}

	backlog, err := st.Backlog(ctx)
	if err != nil || backlog["lab"] != 1 || backlog["portal"] != 0 {
		t.Errorf("backlog = %v, %v; want lab 1", backlog, err)
	}

	steps, err := st.Trace(ctx, "m3")
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, s := range steps {
		stages = append(stages, s.Stage+":"+s.Status)
	}
	if len(steps) != 3 || steps[2].Status != "rejected" || steps[2].AckCode != "AE" || steps[2].Attempt != 1 {
		t.Errorf("trace m3 = %v (%+v); want ingest, route, deliver rejected with AE", stages, steps)
	}
	if _, err := st.Trace(ctx, "nope"); !errors.Is(err, analytics.ErrNoRows) {
		t.Errorf("trace of unknown id: %v; want ErrNoRows", err)
	}
}

// TestMigratesAnOlderDatabase: a database an older careflow created (only
// the first migration) is brought to the current version on start, and
// its rows read through the new views.
func TestMigratesAnOlderDatabase(t *testing.T) {
	ch := chtest.Start(t)
	ctx := context.Background()
	restore := analytics.LimitMigrationsForTest(1)
	old, err := analytics.Open(ctx, ch.DSN("upgrade"))
	restore()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := old.Version(ctx); v != 1 {
		t.Fatalf("old database at version %d; want 1", v)
	}
	var b analytics.Batch
	journey(&b, "u1", "lab", 100*time.Millisecond, false)
	if err := old.Insert(ctx, &b); err != nil {
		t.Fatal(err)
	}
	old.Close()

	st, err := analytics.Open(ctx, ch.DSN("upgrade"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if v, err := st.Version(ctx); err != nil || v != analytics.SchemaVersion() {
		t.Fatalf("version after upgrade = %d, %v; want %d", v, err, analytics.SchemaVersion())
	}
	var n uint64
	if err := st.QueryRowForTest(ctx, "SELECT count() FROM delivery_results").Scan(&n); err != nil || n != 1 {
		t.Errorf("delivery_results over the old rows = %d, %v; want 1", n, err)
	}
	// The upgraded database takes what the old one had no column for: a
	// FHIR server's ids for what it stored.
	b = analytics.Batch{}
	b.Attempts = append(b.Attempts, analytics.Attempt{RowID: "fhir-1", MessageID: "u2", Destination: "fhir-store", Status: "delivered",
		At: time.Now(), RemoteIDs: []string{"Patient/7/_history/2", "Observation/9/_history/1"}})
	if err := st.Insert(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := st.QueryRowForTest(ctx, "SELECT remote_ids FROM delivery_attempts WHERE row_id = 'fhir-1'").Scan(&ids); err != nil || len(ids) != 2 || ids[0] != "Patient/7/_history/2" {
		t.Errorf("remote_ids = %v, %v", ids, err)
	}
}

// Two sinks starting together both run an ADD COLUMN migration; the one
// that finds the column already there takes the migration as done.
func TestMigrationRaceOnAddColumn(t *testing.T) {
	ch := chtest.Start(t)
	ctx := context.Background()
	restore := analytics.LimitMigrationsForTest(7)
	first, err := analytics.Open(ctx, ch.DSN("race"))
	restore()
	if err != nil {
		t.Fatal(err)
	}
	// The other sink got there first: the column exists, the version
	// does not say so yet.
	if err := first.ExecForTest(ctx, "ALTER TABLE delivery_attempts ADD COLUMN remote_ids Array(String)"); err != nil {
		t.Fatalf("add the column: %v", err)
	}
	first.Close()
	st, err := analytics.Open(ctx, ch.DSN("race"))
	if err != nil {
		t.Fatalf("open after the race: %v", err)
	}
	defer st.Close()
	if v, _ := st.Version(ctx); v != analytics.SchemaVersion() {
		t.Errorf("version %d, want %d", v, analytics.SchemaVersion())
	}
}
