package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/topics"
)

// adtAt is adt with EVN-2 evn.
func adtAt(trigger, p, id, evn string) []byte {
	return []byte(strings.Replace(string(adt(trigger, p, id)), "EVN|"+trigger+"|20240102030405", "EVN|"+trigger+"|"+evn, 1))
}

// Issue 10: an A08 that arrives after a newer A08 for the same patient is
// not delivered (no last-update-wins downstream) and raises a stale_update
// exception on careflow.exceptions. The patient's state survives a
// restart: after it, an older update is still refused and a newer one
// delivered.
func TestOlderUpdateAfterNewerIsNotDelivered(t *testing.T) {
	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	dataDir := t.TempDir()
	cfg := est.config(t)

	eng := startEngine(t, cfg, dataDir)
	c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	for _, m := range [][]byte{
		adtAt("A08", "SEQ1", "SEQ-NEW", "20250314100000"),
		adtAt("A08", "SEQ1", "SEQ-OLD", "20250314090000"),   // the sender's retry queue
		adtAt("A08", "SEQ2", "SEQ-OTHER", "20250314080000"), // another patient: not stale
	} {
		if ack := send(t, c, m); ack.Code != "AA" {
			t.Fatalf("ACK %s", ack.Code)
		}
	}
	labHas := func(want ...string) {
		t.Helper()
		lab.await(t, func(m *hl7v2.Message) string { return m.Get("PID-3.1") + "/" + m.Get("EVN-2") }, want...)
	}
	labHas("SEQ1/20250314100000", "SEQ2/20250314080000")
	exc := readTopic(t, eng.Brokers(), topics.Exceptions, 1, 20*time.Second)
	var x avro.Exception
	if len(exc) != 1 || eng.Serde().Decode(exc[0].Value, &x) != nil || x.Code != avro.ExceptionStaleUpdate || x.ControlID != "SEQ-OLD" {
		t.Fatalf("exceptions %d, first %+v; want one stale_update for SEQ-OLD", len(exc), x)
	}
	c.Close()
	if err := eng.Stop(); err != nil {
		t.Fatal(err)
	}

	// The same data directory: the patient's state comes back from its
	// changelog.
	eng = startEngine(t, cfg, dataDir)
	c = &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer c.Close()
	for _, m := range [][]byte{
		adtAt("A08", "SEQ1", "SEQ-OLD2", "20250314095959"),
		adtAt("A08", "SEQ1", "SEQ-NEWER", "20250314110000"),
	} {
		if ack := send(t, c, m); ack.Code != "AA" {
			t.Fatalf("ACK %s", ack.Code)
		}
	}
	labHas("SEQ1/20250314100000", "SEQ2/20250314080000", "SEQ1/20250314110000")
	if exc := readTopic(t, eng.Brokers(), topics.Exceptions, 2, 20*time.Second); len(exc) != 2 {
		t.Fatalf("%d exceptions after the restart, want 2", len(exc))
	}
}
