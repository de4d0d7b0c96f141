package ingest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/topics"
)

// TestShutdownDrainsInFlight holds the broker's produce reply, ends Run's
// context meanwhile, and checks that the listener closes, the in-flight
// message still gets AA once Kafka answers, and Run then returns.
func TestShutdownDrainsInFlight(t *testing.T) {
	h := newHarness(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	h.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		close(entered)
		h.cluster.SleepControl(func() { <-release })
		return nil, nil, false // let the broker handle it normally
	})
	addr := h.stage.Addr("ehr").String()
	c := h.mllpClient(t, "ehr")
	type result struct {
		reply []byte
		err   error
	}
	got := make(chan result, 1)
	go func() {
		reply, err := c.Send(context.Background(), fixture(t, "adt_a01.hl7"))
		got <- result{reply, err}
	}()
	<-entered
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // listener closed
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after Run's context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-got:
		t.Fatalf("ACK sent before Kafka acknowledged the write: %q, %v", r.reply, r.err)
	case <-stopped:
		t.Fatal("Run returned with a message in flight")
	default:
	}
	close(release)
	r := <-got
	if r.err != nil {
		t.Fatalf("in-flight message: %v", r.err)
	}
	ack, err := hl7v2.ParseACK(r.reply)
	if err != nil || ack.Code != hl7v2.AckAA {
		t.Fatalf("in-flight ACK %+v (%v), want AA", ack, err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal(errors.New("Run did not return after draining"))
	}
	h.consume(t, topics.Raw, 1)
}
