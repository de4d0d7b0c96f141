package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// oru is the lab's result for placer order placer, with OBR-25 status and
// one haemoglobin value.
func oru(p, id, placer, filler, status, value string) []byte {
	return []byte(strings.Join([]string{
		"MSH|^~\\&|LAB|LAB|EHR|HOSP|20240102040000||ORU^R01|" + id + "|P|2.5.1",
		"PID|1||" + p + "^^^HOSP^MR||DOE^JANE||19800101|F",
		"ORC|RE|" + placer + "|" + filler,
		"OBR|1|" + placer + "|" + filler + "|CBC^Full blood count^L|||20240102030405||||||||||||||||||" + status,
		"OBX|1|NM|HB^Haemoglobin^L||" + value + "|g/L|||||" + status,
	}, "\r") + "\r")
}

// Issue 10, end to end over MLLP: an order placed by the EHR reaches the
// lab, whose AA (deliver's outcome) makes it sent and accepted; its results come back through lab-results joined to the order's
// journey (the order's correlation id), and careflow.orders records placed,
// preliminary and final. A preliminary sent after the final is not
// delivered to the EHR (status_regressed); a result for an order never
// placed is delivered and raises result_for_unknown_order. After a restart
// the order's state comes back from its changelog: a late preliminary is
// still held.
func TestOrderLifecycleEndToEnd(t *testing.T) {
	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	results := startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	dataDir := t.TempDir()
	cfg := est.config(t)
	eng := startEngine(t, cfg, dataDir)
	ehr := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	labOut := &mllp.Client{Addr: est.LabResults, ACKTimeout: 10 * time.Second}
	sendAA := func(c *mllp.Client, m []byte) {
		t.Helper()
		if ack := send(t, c, m); ack.Code != "AA" {
			t.Fatalf("ACK %s (%s)", ack.Code, ack.Text)
		}
	}
	resultsHave := func(want ...string) {
		t.Helper()
		results.await(t, func(m *hl7v2.Message) string { return m.Get("OBR-2.1") + "/" + m.Get("OBR-25") }, want...)
	}
	sendAA(ehr, orm("LC1", "LC-ORD-1", "RP1^TRAKCARE"))
	await.For(t, 30*time.Second, 20*time.Millisecond, func() error {
		if len(lab.messages()) == 0 {
			return fmt.Errorf("the lab has no order yet")
		}
		return nil
	})
	if got := lab.messages()[0].Get("ORC-2"); got != "RP1^TRAKCARE" {
		t.Errorf("the lab got ORC-2 %q, want the whole EI RP1^TRAKCARE", got)
	}
	// The lab's AA reaches route as deliver's outcome: sent, then accepted.
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := len(readTopic(t, eng.Brokers(), topics.Orders, 3, time.Second)); n < 3 {
			return fmt.Errorf("%d order transitions, want placed, sent, accepted", n)
		}
		return nil
	})
	sendAA(labOut, oru("LC1", "LC-RES-1", "RP1^TRAKCARE", "F1^LAB", "P", "140"))
	sendAA(labOut, oru("LC1", "LC-RES-2", "RP1^TRAKCARE", "F1^LAB", "F", "141"))
	sendAA(labOut, oru("LC1", "LC-RES-3", "RP1^TRAKCARE", "F1^LAB", "P", "139")) // after the final
	sendAA(labOut, oru("LC1", "LC-RES-4", "RP404^TRAKCARE", "", "F", "1"))       // never placed
	resultsHave("RP1/P", "RP1/F", "RP404/F")

	states := map[string][]string{}
	var orderCorrelation string
	for _, r := range readTopic(t, eng.Brokers(), topics.Orders, 5, 20*time.Second) {
		var x avro.OrderTransition
		if err := eng.Serde().Decode(r.Value, &x); err != nil {
			t.Fatal(err)
		}
		states[x.PlacerOrder] = append(states[x.PlacerOrder], x.State)
		orderCorrelation = x.CorrelationID
	}
	if got := strings.Join(states["RP1^TRAKCARE"], ","); got != "placed,sent,accepted,preliminary,final" {
		t.Errorf("RP1's transitions %q, want placed,sent,accepted,preliminary,final", got)
	}
	codes := map[string]bool{}
	for _, r := range readTopic(t, eng.Brokers(), topics.Exceptions, 2, 20*time.Second) {
		var x avro.Exception
		if err := eng.Serde().Decode(r.Value, &x); err != nil {
			t.Fatal(err)
		}
		codes[x.Code] = true
	}
	if !codes[lifecycle.StatusRegressed] || !codes[lifecycle.ResultForUnknownOrder] {
		t.Errorf("exceptions %v, want status_regressed and result_for_unknown_order", codes)
	}
	// The delivered results carry the order's journey.
	joined := 0
	for _, r := range readTopic(t, eng.Brokers(), topics.Outbound("ehr-results"), 3, 20*time.Second) {
		var ev avro.ClinicalEvent
		if err := eng.Serde().Decode(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.CorrelationID == orderCorrelation {
			joined++
		}
	}
	if joined != 2 {
		t.Errorf("%d results for RP1 carry the order's correlation id %s, want 2", joined, orderCorrelation)
	}

	ehr.Close()
	labOut.Close()
	if err := eng.Stop(); err != nil {
		t.Fatal(err)
	}
	eng = startEngine(t, cfg, dataDir)
	labOut = &mllp.Client{Addr: est.LabResults, ACKTimeout: 10 * time.Second}
	defer labOut.Close()
	sendAA(labOut, oru("LC1", "LC-RES-5", "RP1^TRAKCARE", "F1^LAB", "P", "138")) // still after the final
	sendAA(labOut, oru("LC1", "LC-RES-6", "RP1^TRAKCARE", "F1^LAB", "C", "142")) // a correction is news
	resultsHave("RP1/P", "RP1/F", "RP404/F", "RP1/C")
}
