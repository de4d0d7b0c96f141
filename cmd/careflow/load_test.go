package main

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
)

func TestLoadCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		m, err := hl7v2.Parse(append([]byte(nil), req.Payload...))
		if err != nil {
			return nil
		}
		got.Add(1)
		return hl7v2.BuildACK(m.Header(), m.Delimiters(), hl7v2.AckAA, hl7v2.ACKOptions{ControlID: "A1", Now: time.Now()})
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	code, out, errOut := runCLI("load", "--rate", "2000", "--count", "40", "--connections", "2",
		"--to", ln.Addr().String(), "--corpus", "../../examples/messages")
	if code != 0 {
		t.Fatalf("load exited %d: %s%s", code, out, errOut)
	}
	if got.Load() != 40 || !strings.Contains(out, "sent 40 ") || !strings.Contains(out, "AA 40 ") || !strings.Contains(out, "p99 ") {
		t.Fatalf("receiver got %d; report:\n%s", got.Load(), out)
	}
	if code, _, _ := runCLI("load", "--to", ln.Addr().String()); code != 2 {
		t.Errorf("load without --corpus exited %d, want 2", code)
	}
}
