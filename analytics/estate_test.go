package analytics_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/careflow-health/careflow/analytics"
)

// estate builds rows for the estate and chart tests.
type estate struct{ analytics.Batch }

func (e *estate) tr(id, iface, dest, stage, status, code string, ingest, at time.Time) {
	e.Transitions = append(e.Transitions, analytics.Transition{RowID: id + "/" + stage + "/" + dest + "/" + status + "/" + code,
		MessageID: id, CorrelationID: id, Interface: iface, Destination: dest, Stage: stage, Status: status, ErrorCode: code,
		IngestTime: ingest, StageTime: at})
}

// attempt is one delivery attempt, with the transition the sink writes
// beside it.
func (e *estate) attempt(id, dest, status string, n int, code, loc, text string, ingest, at time.Time) {
	e.tr(id, "ehr", dest, "deliver", status, code, ingest, at)
	e.Attempts = append(e.Attempts, analytics.Attempt{RowID: e.Transitions[len(e.Transitions)-1].RowID, MessageID: id,
		CorrelationID: id, Interface: "ehr", Destination: dest, Attempt: n, Status: status, ErrorCode: code,
		ErrorLocation: loc, ErrorText: text, IngestTime: ingest, At: at})
}

func (e *estate) deadLetter(rowID, id, iface, stage, code string, at time.Time) {
	e.tr(rowID, iface, "", stage, "dead_lettered", code, time.Time{}, at)
	e.Transitions[len(e.Transitions)-1].MessageID = id
	e.DeadLetters = append(e.DeadLetters, analytics.DeadLetter{RowID: rowID, Stage: stage, ErrorCode: code,
		MessageID: id, Interface: iface, At: at})
}

func TestDestinationsInterfacesAndRejections(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	var e estate
	hour := t0.Add(-time.Hour) // before the window
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		e.tr(id, "ehr", "", "ingest", "accepted", "", t0, t0)
		e.tr(id, "ehr", "lab", "route", "routed", "", t0, t0.Add(time.Millisecond))
		e.SLAs = append(e.SLAs, analytics.MessageSLA{MessageID: id, Destination: "lab", SLA: time.Second, At: t0})
	}
	e.tr("m0", "ehr", "", "ingest", "accepted", "", hour, hour)
	e.attempt("m0", "lab", "delivered", 1, "", "", "", hour, hour.Add(time.Second))
	e.attempt("m1", "lab", "delivered", 1, "", "", "", t0, t0.Add(100*time.Millisecond))
	e.attempt("m2", "lab", "rejected", 1, "AE", "PID-3", "destination lab answered AE", t0, t0.Add(2*time.Second))
	e.deadLetter("careflow.dlq.deliver/0/1", "m2", "ehr", "deliver", "AE", t0.Add(2*time.Second))
	e.attempt("m3", "lab", "retrying", 1, "mllp.timeout", "", "destination lab, attempt 1: no ACK within 30s", t0, t0.Add(3*time.Second))
	e.attempt("m3", "lab", "delivered", 2, "", "", "", t0, t0.Add(5*time.Second)) // later than its 1s SLA
	// m4 is still waiting at lab; m5 at portal, which has no attempt.
	e.tr("m5", "ehr", "portal", "route", "routed", "", t0, t0.Add(time.Minute))
	// A destination that failed only before the window is not in it.
	e.attempt("x1", "old", "retrying", 1, "mllp.refused", "", "refused", hour, hour)
	// A failure the sink wrote before error_text existed.
	e.attempt("l1", "legacy", "retrying", 1, "AR", "ERR-1", "", t0, t0.Add(time.Second))

	// Refused and invalid before routing.
	e.tr("m6", "ehr", "", "ingest", "accepted", "", t0, t0)
	e.tr("m6", "ehr", "", "validate", "invalid", "missing_segment", t0, t0.Add(time.Second))
	e.deadLetter("careflow.dlq.validate/0/1", "m6", "ehr", "validate", "missing_segment", t0.Add(time.Second))
	e.tr("m7", "ehr", "", "validate", "invalid", "bad_date", t0, t0.Add(time.Second))
	e.tr("m8", "ehr", "", "validate", "invalid", "bad_date", t0, t0.Add(time.Second))
	// Unreadable input has no message id: each counts once.
	e.deadLetter("careflow.dlq.ingest/0/1", "", "ehr", "ingest", "not_hl7", t0.Add(time.Second))
	e.deadLetter("careflow.dlq.ingest/0/2", "", "ehr", "ingest", "not_hl7", t0.Add(time.Second))
	e.deadLetter("careflow.dlq.ingest/0/0", "", "ehr", "ingest", "not_hl7", hour)
	e.Exceptions = append(e.Exceptions,
		analytics.Exception{ExceptionID: "x/1", Code: "stale_update", Interface: "ehr", At: t0},
		analytics.Exception{ExceptionID: "x/2", Code: "late_result", Interface: "ehr", At: t0.Add(time.Minute)},
		analytics.Exception{ExceptionID: "x/0", Code: "stale_update", Interface: "ehr", At: hour})
	e.Reviews = append(e.Reviews,
		analytics.Review{RowID: "R1/pending", ReviewID: "R1", Status: "pending", Interface: "ehr", HeldAt: hour},
		analytics.Review{RowID: "R1/approved", ReviewID: "R1", Status: "approved", Interface: "ehr", HeldAt: hour, DecidedAt: t0},
		analytics.Review{RowID: "R2/pending", ReviewID: "R2", Status: "pending", Interface: "ehr", HeldAt: hour},
		analytics.Review{RowID: "R3/pending", ReviewID: "R3", Status: "pending", Interface: "lab-results", HeldAt: t0})
	insertTwice(t, st, &e.Batch)

	dests, err := st.Destinations(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]analytics.DestinationStats{
		"lab": {Destination: "lab", Delivered: 2, Rejected: 1, Retrying: 1, Pending: 1, OldestPending: t0.Add(time.Millisecond),
			Breaches: 1, LastError: "destination lab, attempt 1: no ACK within 30s", LastErrorCode: "mllp.timeout", LastErrorAt: t0.Add(3 * time.Second)},
		"portal": {Destination: "portal", Pending: 1, OldestPending: t0.Add(time.Minute)},
		"legacy": {Destination: "legacy", Retrying: 1, LastError: "AR at ERR-1", LastErrorCode: "AR", LastErrorAt: t0.Add(time.Second)},
	}
	if !reflect.DeepEqual(dests, want) {
		t.Errorf("Destinations(t0) =\n%+v\nwant\n%+v", dests, want)
	}
	// The whole history: m0 too, and old's failure.
	all, err := st.Destinations(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if all["lab"].Delivered != 3 || all["old"].LastErrorCode != "mllp.refused" {
		t.Errorf("Destinations(zero) lab %+v, old %+v; want 3 delivered and old's refusal", all["lab"], all["old"])
	}

	ifaces, err := st.Interfaces(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	wantIfaces := map[string]analytics.InterfaceStats{
		// Rejected: m6 (invalid and dead-lettered, once), m7, m8 and the two
		// unreadable records in the window; not m2, rejected by a
		// destination. DeadLetters: m2's, m6's and the two unreadable.
		"ehr":         {Interface: "ehr", Accepted: 5, Rejected: 5, LastAt: t0, OpenExceptions: 1, Exceptions: 2, DeadLetters: 4},
		"lab-results": {Interface: "lab-results", OpenExceptions: 1},
	}
	if !reflect.DeepEqual(ifaces, wantIfaces) {
		t.Errorf("Interfaces(t0) =\n%+v\nwant\n%+v", ifaces, wantIfaces)
	}
	later, err := st.Interfaces(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ehr := later["ehr"]; ehr.Accepted != 0 || ehr.LastAt != t0 || ehr.OpenExceptions != 1 {
		t.Errorf("Interfaces an hour later: ehr %+v; want nothing accepted, last seen at t0, R2 still open", ehr)
	}

	codes, err := st.RejectionsByCode(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	wantCodes := []analytics.CodeCount{
		{Stage: "ingest", Code: "not_hl7", Count: 2},
		{Stage: "validate", Code: "bad_date", Count: 2},
		{Stage: "deliver", Code: "AE", Count: 1}, // rejected, then dead-lettered: once
		{Stage: "validate", Code: "missing_segment", Count: 1},
	}
	if !reflect.DeepEqual(codes, wantCodes) {
		t.Errorf("RejectionsByCode(t0) = %+v; want %+v", codes, wantCodes)
	}
	if none, err := st.RejectionsByCode(ctx, t0.Add(time.Hour)); err != nil || len(none) != 0 {
		t.Errorf("RejectionsByCode an hour later = %+v, %v; want none", none, err)
	}
}

func TestEstateOfAnEmptyDatabase(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	if d, err := st.Destinations(ctx, t0); err != nil || len(d) != 0 {
		t.Errorf("Destinations = %v, %v; want none", d, err)
	}
	if i, err := st.Interfaces(ctx, t0); err != nil || len(i) != 0 {
		t.Errorf("Interfaces = %v, %v; want none", i, err)
	}
	if s, err := st.DeliveredPer(ctx, t0, t0.Add(time.Hour), time.Minute); err != nil || len(s) != 0 {
		t.Errorf("DeliveredPer = %v, %v; want no series", s, err)
	}
	if m, err := st.Messages(ctx, analytics.MessageQuery{}); err != nil || len(m) != 0 {
		t.Errorf("Messages = %v, %v; want none", m, err)
	}
}
