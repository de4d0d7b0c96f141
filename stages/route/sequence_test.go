package route

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// at is an ADT event for the fixture patient with EVN-2 evn (and MSH-7
// msh) and its own ids.
func at(trigger, id, evn, msh string) *avro.ClinicalEvent {
	ev := adt(trigger)
	ev.EventID, ev.Provenance.MessageID, ev.Provenance.ControlID = id, id, "C-"+id
	ev.Provenance.EventTime, ev.Provenance.MessageTime = evn, msh
	return ev
}

// topicsOf lists the topics of outs, in order.
func topicsOf(outs []stages.Envelope) []string {
	var ts []string
	for _, o := range outs {
		ts = append(ts, o.Topic)
	}
	return ts
}

// An ADT update older than the one applied for its patient is not routed:
// an Exception (stale_update) and a stale outcome say why. Newer or equal
// updates are routed and advance the patient's state; an older event that
// is not an update (an admission replayed) is routed but does not move the
// state back. EVN-2 orders, MSH-7 stands in when EVN-2 is absent or
// malformed.
func TestSequenceRefusesStaleUpdates(t *testing.T) {
	tb := stages.NewTable(topics.PatientState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) { c.Patients = tb })
	steps := []struct {
		ev        *avro.ClinicalEvent
		wantStale bool
	}{
		{at("A01", "m1", "20250314080000", "20250314080001"), false},
		{at("A08", "m2", "20250314100000", "20250314100001"), false},
		{at("A08", "m3", "20250314090000", "20250314100500"), true},  // sender's retry queue: older EVN-2
		{at("A08", "m4", "20250314100000", "20250314100600"), false}, // same event time: not older
		{at("A31", "m5", "", "20250314093000"), true},                // no EVN-2: MSH-7 is older
		{at("A08", "m6", "2025031X", "20250314095900"), true},        // malformed EVN-2: MSH-7
		{at("A01", "m7", "20250314070000", "20250314070000"), false}, // older, but not an update
		{at("A08", "m8", "20250314110000", "20250314110000"), false}, // newer
		{at("A08", "m9", "20250314100000", "20250314100000"), true},  // older than m8, not m2
	}
	for _, st := range steps {
		outs, err := h.stage.Process(context.Background(), h.input(t, st.ev))
		if err != nil {
			t.Fatalf("%s: %v", st.ev.EventID, err)
		}
		ts := topicsOf(outs)
		if !st.wantStale {
			for _, o := range outs {
				if o.Topic == topics.Exceptions {
					t.Fatalf("%s: raised an exception, want it routed: %v", st.ev.EventID, ts)
				}
			}
			tb.Commit()
			continue
		}
		if len(outs) != 2 || outs[0].Topic != topics.Exceptions || outs[1].Topic != topics.Outcomes {
			t.Fatalf("%s: outputs %v, want an exception and an outcome only (not routed)", st.ev.EventID, ts)
		}
		var x avro.Exception
		if err := h.serde.Decode(outs[0].Value, &x); err != nil {
			t.Fatal(err)
		}
		if x.Code != avro.ExceptionStaleUpdate || x.MessageID != st.ev.EventID || x.ControlID != "C-"+st.ev.EventID ||
			x.PatientKey != "MRN001^HOSP" || x.Action != avro.ActionNotDelivered || x.Stage != topics.StageRoute ||
			!strings.Contains(x.Reason, "older than the update already applied") {
			t.Errorf("%s: exception %+v", st.ev.EventID, x)
		}
		if strings.Contains(x.Reason, "Lovelace") || strings.Contains(x.Reason, "MRN001") {
			t.Errorf("%s: the reason names the patient: %s", st.ev.EventID, x.Reason)
		}
		var o avro.DeliveryOutcome
		if err := h.serde.Decode(outs[1].Value, &o); err != nil {
			t.Fatal(err)
		}
		if o.Status != avro.StatusStale || o.ErrorCode != avro.ExceptionStaleUpdate || o.MessageID != st.ev.EventID {
			t.Errorf("%s: outcome %+v", st.ev.EventID, o)
		}
		tb.Commit()
	}
	// m6's malformed EVN-2 was stale; a malformed EVN-2 on a newer update
	// is routed with a warning outcome naming EVN-2.
	outs, err := h.stage.Process(context.Background(), h.input(t, at("A08", "m10", "2025-03-14", "20250314120000")))
	if err != nil {
		t.Fatal(err)
	}
	warned, routed := false, false
	for _, o := range outs {
		if topics.DestinationOf(o.Topic) != "" {
			routed = true
		}
		if o.Topic != topics.Outcomes {
			continue
		}
		var oc avro.DeliveryOutcome
		if err := h.serde.Decode(o.Value, &oc); err != nil {
			t.Fatal(err)
		}
		if oc.Status == avro.StatusWarning && oc.ErrorCode == CodeBadEventTime && oc.ErrorLocation == "EVN-2" {
			warned = true
		}
	}
	if !warned || !routed {
		t.Errorf("malformed EVN-2 on a newer update: warned %v, routed %v; want both (%v)", warned, routed, topicsOf(outs))
	}
	tb.Commit()
	if got := testutil.ToFloat64(h.stage.metrics.exceptions.WithLabelValues(avro.ExceptionStaleUpdate)); got != 4 {
		t.Errorf("careflow_exceptions_total{code=stale_update} = %v, want 4", got)
	}
	var st patientState
	b, _ := tb.Get(3, "MRN001^HOSP")
	if err := json.Unmarshal(b, &st); err != nil || st.MessageID != "m10" {
		t.Errorf("patient state %s (%v), want the newest applied, m10", b, err)
	}
}

// The state follows the transaction: an aborted batch's update does not
// make a later, older-than-it update stale.
func TestSequenceStateAbortsWithTheTransaction(t *testing.T) {
	tb := stages.NewTable(topics.PatientState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) { c.Patients = tb })
	outs, err := h.stage.Process(context.Background(), h.input(t, at("A08", "m1", "20250314100000", "")))
	if err != nil || outs[0].Topic != topics.PatientState {
		t.Fatalf("first update: %v, outputs %v; want the state change first", err, topicsOf(outs))
	}
	tb.Abort()
	outs, err = h.stage.Process(context.Background(), h.input(t, at("A08", "m2", "20250314090000", "")))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Topic == topics.Exceptions {
			t.Fatal("an aborted update still made an older one stale")
		}
	}
}

// Without a table, or for events that are not ADT or have no patient key,
// nothing is sequenced.
func TestSequenceOff(t *testing.T) {
	h := newHarness(t, demoRoutes)
	for _, id := range []string{"m1", "m2"} {
		evn := map[string]string{"m1": "20250314100000", "m2": "20250314090000"}[id]
		outs, err := h.stage.Process(context.Background(), h.input(t, at("A08", id, evn, "")))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			if o.Topic == topics.Exceptions || o.Topic == topics.PatientState {
				t.Fatalf("no table, yet %v", topicsOf(outs))
			}
		}
	}
	tb := stages.NewTable(topics.PatientState)
	h = newHarnessWith(t, demoRoutes, func(c *Config) { c.Patients = tb })
	in := h.input(t, at("A08", "k1", "20250314100000", ""))
	in.Key = []byte(adt("A08").IdempotencyKey) // keyed by its idempotency key: no patient
	if outs, err := h.stage.Process(context.Background(), in); err != nil || outs[0].Topic == topics.PatientState {
		t.Fatalf("a message without a patient changed the state: %v %v", topicsOf(outs), err)
	}
}
