package deliver_test

// One attempt is one send: an ACK timeout costs the destination one frame,
// one outcome and one count towards its breaker.

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/deliver"
	"github.com/careflow-health/careflow/stages/deliver/render"
)

// silentReceiver reads frames and never answers.
type silentReceiver struct {
	addr   string
	frames atomic.Int32
	conns  atomic.Int32
}

func startSilentReceiver(t *testing.T) *silentReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rx := &silentReceiver{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			rx.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				r := mllp.NewReader(c, 0)
				for {
					if _, err := r.ReadFrame(); err != nil {
						return
					}
					rx.frames.Add(1)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return rx
}

// counter reads one labelled series of a counter vector from reg.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// A receiver that never answers costs one frame per attempt: after
// BreakerFailures timeouts it has seen exactly that many frames, the
// breaker is open, and the next Process sends nothing.
func TestDeliverACKTimeoutSendsOncePerAttempt(t *testing.T) {
	const failures = 3
	const ackTimeout = 100 * time.Millisecond
	serde := newSerde(t)
	rx := startSilentReceiver(t)
	reg := prometheus.NewRegistry()
	st, err := deliver.New(deliver.Config{
		Destination: deliver.Destination{Name: "lab", BreakerFailures: failures, BreakerOpenFor: time.Hour,
			Connector: deliver.MLLP{Client: &mllp.Client{Addr: rx.addr, ACKTimeout: ackTimeout}},
			Target:    render.Target{Format: "hl7v2", Version: "2.5.1", SendingApplication: "CAREFLOW", ReceivingApplication: "LAB"}},
		Serde: serde, Metrics: deliver.NewMetrics(reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	in := envelope(t, serde, event("silent"))
	for i := 1; i <= failures; i++ {
		outs, err := st.Process(context.Background(), in)
		o := outcomeOf(t, serde, outs)
		if o.Status != avro.StatusRetrying || o.ErrorCode != deliver.CodeMLLPTimeout || o.Attempt != i {
			t.Fatalf("attempt %d: outcome status %q code %q attempt %d", i, o.Status, o.ErrorCode, o.Attempt)
		}
		want := stages.KindTransient
		if i == failures {
			want = stages.KindUnavailable
		}
		if stages.KindOf(err) != want {
			t.Fatalf("attempt %d: err %v (kind %v), want kind %v", i, err, stages.KindOf(err), want)
		}
		await.For(t, 2*time.Second, 5*time.Millisecond, func() error {
			if n := rx.frames.Load(); n < int32(i) {
				return fmt.Errorf("receiver saw %d frames after attempt %d", n, i)
			}
			return nil
		})
		if n := rx.frames.Load(); n != int32(i) {
			t.Fatalf("receiver saw %d frames after %d attempts: a timeout was sent again", n, i)
		}
	}
	if st.BreakerState() != gobreaker.StateOpen {
		t.Fatalf("breaker %v after %d timeouts, want open", st.BreakerState(), failures)
	}
	start := time.Now()
	outs, err := st.Process(context.Background(), in)
	if len(outs) != 0 || stages.KindOf(err) != stages.KindUnavailable || time.Since(start) >= ackTimeout {
		t.Fatalf("with the breaker open: %d outputs, err %v after %s; want none, unavailable, at once", len(outs), err, time.Since(start))
	}
	if n, c := rx.frames.Load(), rx.conns.Load(); n != failures || c != failures {
		t.Fatalf("receiver saw %d frames on %d connections, want %d on %d", n, c, failures, failures)
	}
	if got := counter(t, reg, "careflow_deliver_results_total", map[string]string{"destination": "lab", "result": avro.StatusRetrying}); got != failures {
		t.Fatalf("retrying counter %v, want %d", got, failures)
	}
}

// A kept-alive connection the receiver closed between messages (its idle
// timeout) is redialled without a failed attempt, and the message reaches
// the new connection once.
func TestDeliverRedialsKeptAliveConnection(t *testing.T) {
	serde := newSerde(t)
	var mu sync.Mutex
	perConn := map[string]int{}
	var closed atomic.Int32
	srv := &mllp.Server{
		IdleTimeout: 250 * time.Millisecond, // short, but not so short that a slow test machine trips it mid-send
		Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
			mu.Lock()
			perConn[req.Remote.String()]++
			mu.Unlock()
			m, err := hl7v2.Parse(req.Payload)
			if err != nil {
				return nil
			}
			return hl7v2.BuildACK(m.Header(), m.Delimiters(), hl7v2.AckAA, hl7v2.ACKOptions{ControlID: "A1"})
		}),
		ConnState: func(_ net.Addr, st mllp.ConnState) {
			if st == mllp.StateClosed {
				closed.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	st := newStage(t, serde, deliver.MLLP{Client: &mllp.Client{Addr: ln.Addr().String(), ACKTimeout: 5 * time.Second}}, nil)
	if _, err := st.Process(context.Background(), envelope(t, serde, event("k1"))); err != nil {
		t.Fatal(err)
	}
	await.For(t, 5*time.Second, 5*time.Millisecond, func() error {
		if closed.Load() < 1 {
			return fmt.Errorf("receiver has not closed the idle connection")
		}
		return nil
	})
	outs, err := st.Process(context.Background(), envelope(t, serde, event("k2")))
	if o := outcomeOf(t, serde, outs); err != nil || o.Status != avro.StatusDelivered || o.Attempt != 1 {
		t.Fatalf("after the receiver closed the connection: status %q attempt %d err %v; want delivered on attempt 1", o.Status, o.Attempt, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(perConn) != 2 {
		t.Fatalf("frames per connection %v, want one on each of two", perConn)
	}
	for addr, n := range perConn {
		if n != 1 {
			t.Fatalf("connection %s got %d frames, want 1", addr, n)
		}
	}
}
