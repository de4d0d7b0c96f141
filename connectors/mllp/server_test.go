package mllp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/careflow-health/careflow/internal/await"
)

// startServer serves s on a loopback port until the test ends.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// echo replies "ACK:" + payload.
var echo = HandlerFunc(func(_ context.Context, req Request) []byte {
	if req.Err != nil {
		return []byte("ERR:" + req.Err.(*FrameError).Code)
	}
	return append([]byte("ACK:"), req.Payload...)
})

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes payload framed on c and reads one reply frame.
func roundTrip(t testing.TB, c net.Conn, r *Reader, payload string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := WriteFrame(c, []byte(payload)); err != nil {
		t.Fatal(err)
	}
	reply, err := r.ReadFrame()
	if err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return string(reply)
}

func TestServerRoundTrip(t *testing.T) {
	s := &Server{Handler: echo, MaxMessageSize: 16}
	addr := startServer(t, s)
	c := dial(t, addr)
	r := NewReader(c, 0)
	tests := []struct{ send, want string }{
		{"hello", "ACK:hello"},
		{"second", "ACK:second"},
		{"this one is far too long", "ERR:mllp.too_large"},
		{"after", "ACK:after"}, // the connection survives an oversize frame
	}
	for _, tt := range tests {
		if got := roundTrip(t, c, r, tt.send); got != tt.want {
			t.Errorf("send %q: reply %q, want %q", tt.send, got, tt.want)
		}
	}
}

func TestServerReadTimeoutClosesHalfFrame(t *testing.T) {
	var calls atomic.Int32
	h := HandlerFunc(func(context.Context, Request) []byte { calls.Add(1); return []byte("x") })
	s := &Server{Handler: h, ReadTimeout: 100 * time.Millisecond}
	c := dial(t, startServer(t, s))
	if _, err := c.Write([]byte(sb + "MSH|half a frame")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err == nil || n != 0 {
		t.Fatalf("read = %d, %v; want the server to close the connection", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("server did not close the connection within 5s")
	}
	if calls.Load() != 0 {
		t.Fatalf("handler called %d times for an incomplete frame", calls.Load())
	}
}

func TestServerIdleTimeout(t *testing.T) {
	s := &Server{Handler: echo, IdleTimeout: 100 * time.Millisecond}
	c := dial(t, startServer(t, s))
	r := NewReader(c, 0)
	if got := roundTrip(t, c, r, "a"); got != "ACK:a" {
		t.Fatalf("reply %q", got)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after idle: %v, want EOF", err)
	}
}

func TestServerMaxConnections(t *testing.T) {
	const max, flood = 100, 200
	// Past the limit each newcomer closes a silent flood connection
	// (limits_test.go has the policy); the first, a working sender, stays.
	var rejected atomic.Int32
	s := &Server{Handler: echo, MaxConnections: max,
		ConnState: func(_ net.Addr, st ConnState) {
			if st == StateRejected || st == StateEvicted {
				rejected.Add(1)
			}
		}}
	addr := startServer(t, s)

	// The first connection is served before the flood and keeps working.
	first := dial(t, addr)
	firstR := NewReader(first, 0)
	if got := roundTrip(t, first, firstR, "before"); got != "ACK:before" {
		t.Fatalf("reply %q", got)
	}
	conns := make([]net.Conn, 0, flood)
	for range flood {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	await.For(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := rejected.Load(); n < flood-max+1 {
			return fmt.Errorf("%d connections rejected or evicted, want %d", n, flood-max+1)
		}
		return nil
	})
	if got := roundTrip(t, first, firstR, "during"); got != "ACK:during" {
		t.Fatalf("reply during flood %q", got)
	}
	for _, c := range conns {
		c.Close()
	}
	// Once the flood is gone, a new good client is served.
	await.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if err := WriteFrame(c, []byte("late")); err != nil {
			return err
		}
		reply, err := NewReader(c, 0).ReadFrame()
		if err != nil {
			return err
		}
		if string(reply) != "ACK:late" {
			return fmt.Errorf("reply %q", reply)
		}
		return nil
	})
}

func TestServerShutdownDrainsInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	handlerCtxErr := make(chan error, 1)
	h := HandlerFunc(func(ctx context.Context, req Request) []byte {
		close(entered)
		<-release
		handlerCtxErr <- ctx.Err()
		return []byte("done")
	})
	s := &Server{Handler: h}
	addr := startServer(t, s)
	busy := dial(t, addr)
	idle := dial(t, addr)
	if err := WriteFrame(busy, []byte("slow")); err != nil {
		t.Fatal(err)
	}
	<-entered

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()

	// The idle connection is closed while the handler is still running.
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection still open during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the in-flight handler finished", err)
	default:
	}
	close(release)
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, err := NewReader(busy, 0).ReadFrame()
	if err != nil || string(reply) != "done" {
		t.Fatalf("in-flight reply = %q, %v", reply, err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-handlerCtxErr; err != nil {
		t.Fatalf("handler context ended during graceful shutdown: %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("listener still accepting after Shutdown")
	}
}

func TestServerShutdownDeadlineForcesClose(t *testing.T) {
	entered := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, req Request) []byte {
		close(entered)
		<-ctx.Done() // a handler that only ends when told to
		return nil
	})
	s := &Server{Handler: h}
	c := dial(t, startServer(t, s))
	if err := WriteFrame(c, []byte("stuck")); err != nil {
		t.Fatal(err)
	}
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
}

func TestServerConcurrentConnections(t *testing.T) {
	s := &Server{Handler: echo}
	addr := startServer(t, s)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			r := NewReader(c, 0)
			for j := range 20 {
				want := fmt.Sprintf("c%d-m%d", i, j)
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := WriteFrame(c, []byte(want)); err != nil {
					t.Error(err)
					return
				}
				got, err := r.ReadFrame()
				if err != nil || string(got) != "ACK:"+want {
					t.Errorf("reply %q, %v; want ACK:%s", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
