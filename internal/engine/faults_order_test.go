package engine_test

// The arrival-order row of the fault matrix: a patient's messages out of
// clinical order, interleaved with other patients', over several
// connections.

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
)

// One patient's ADT^A08 arrives before its ADT^A01, and each patient's
// messages alternate between two connections, interleaved with another
// patient's; then two more patients send at once, one on each connection.
// Every message is delivered, and each patient's messages reach the lab in
// the order ingest acknowledged them: careflow keeps arrival order per
// patient, whatever the connection, and does not reorder by clinical sense.
func TestFaultOutOfOrderArrival(t *testing.T) {
	t.Parallel() // its engine is its own; the timing-sensitive destination rows run alone
	fe := newFaultEstate(t)
	lab := startFaultLab(t, fe.Lab, labAlwaysAA)
	eng := startEngine(t, fe.config(t), t.TempDir())
	tail := newFaultTail(t, eng)
	c1 := &mllp.Client{Addr: fe.EHR}
	c2 := &mllp.Client{Addr: fe.EHR}
	defer c1.Close()
	defer c2.Close()

	// label is how a message is recognised at the lab: its type and, for
	// an order, its placer number.
	type step struct {
		c       *mllp.Client
		patient string
		label   string // A01, A08 or a placer number
	}
	steps := []step{
		{c1, "OOA", "A08"}, // OOA's update before its admission
		{c2, "OOB", "A01"},
		{c2, "OOA", "A01"},
		{c1, "OOB", "ORD-B1"},
		{c1, "OOA", "ORD-A1"},
		{c2, "OOB", "A08"},
		{c2, "OOA", "ORD-A2"},
		{c1, "OOB", "ORD-B2"},
		{c1, "OOA", "A08"},
	}
	var sent []faultSent
	acked := map[string][]string{} // patient → labels in the order ingest acknowledged them
	msg := func(patient, label, id string) []byte {
		if label == "A01" || label == "A08" {
			return adt(label, patient, id)
		}
		return orm(patient, id, label)
	}
	for i, s := range steps {
		id := fmt.Sprintf("OO%d", i)
		faultSend(t, s.c, msg(s.patient, s.label, id), "AA")
		acked[s.patient] = append(acked[s.patient], s.label)
		sent = append(sent, faultSent{key: ehrKey(id), dests: []string{"lab"}})
	}

	// Two patients at once, one per connection: their messages interleave
	// in Kafka however the two senders race.
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, 2)
	for n, c := range []*mllp.Client{c1, c2} {
		patient := fmt.Sprintf("OOC%d", n)
		wg.Go(func() {
			for k := range 8 {
				label := []string{"A08", "A01", fmt.Sprintf("ORD-%s-%d", patient, k)}[k%3]
				id := fmt.Sprintf("OOC%d-%d", n, k)
				reply, err := c.Send(t.Context(), msg(patient, label, id))
				if err != nil {
					errs <- fmt.Errorf("%s: send %s: %w", patient, id, err)
					return
				}
				if ack, err := hl7v2.ParseACK(reply); err != nil || ack.Code != hl7v2.AckAA {
					errs <- fmt.Errorf("%s: %s answered %q (%v)", patient, id, ack.Code, err)
					return
				}
				mu.Lock()
				acked[patient] = append(acked[patient], label)
				sent = append(sent, faultSent{key: ehrKey(id), dests: []string{"lab"}})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	tail.settle(sent, 30*time.Second)
	await.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := len(lab.delivered()); n != len(sent) {
			return fmt.Errorf("lab has %d of %d", n, len(sent))
		}
		return nil
	})
	got := map[string][]string{}
	for _, m := range lab.delivered() {
		label := m.Get("MSH-9.2")
		if m.Get("MSH-9.1") == "ORM" {
			label = m.Get("ORC-2.1")
		}
		p := m.Get("PID-3[1].1")
		got[p] = append(got[p], label)
	}
	for p, want := range acked {
		if !slices.Equal(got[p], want) {
			t.Errorf("patient %s reached the lab as %v; ingest acknowledged %v", p, got[p], want)
		}
	}
	if n := len(lab.seen()); n != len(sent) {
		t.Errorf("lab was sent %d frames for %d messages", n, len(sent))
	}
}
