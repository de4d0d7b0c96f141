package mllp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/peer"
	"github.com/careflow-health/careflow/internal/testpki"
)

// rawServer accepts connections on loopback and runs fn on each.
func rawServer(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fn(c) // one connection at a time is all these tests need
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestClientSend(t *testing.T) {
	addr := startServer(t, &Server{Handler: echo})
	c := &Client{Addr: addr}
	defer c.Close()
	for _, msg := range []string{"one", "two"} {
		reply, err := c.Send(context.Background(), []byte(msg))
		if err != nil || string(reply) != "ACK:"+msg {
			t.Fatalf("Send(%q) = %q, %v", msg, reply, err)
		}
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name  string
		serve func(net.Conn)
		check func(error) bool
	}{
		{"ACK timeout", func(c net.Conn) {
			defer c.Close()
			_, _ = NewReader(c, 0).ReadFrame()
			_, _ = c.Read(make([]byte, 1)) // hold the connection, never reply
		}, func(err error) bool { return errors.Is(err, ErrTimeout) }},
		{"server closes connection", func(c net.Conn) {
			_, _ = NewReader(c, 0).ReadFrame()
			c.Close()
		}, func(err error) bool { var oe *net.OpError; return errors.As(err, &oe) }},
		{"server closes mid-reply", func(c net.Conn) {
			_, _ = NewReader(c, 0).ReadFrame()
			_, _ = c.Write([]byte(sb + "MSH|partial"))
			c.Close()
		}, func(err error) bool { var oe *net.OpError; return errors.As(err, &oe) }},
		{"garbage reply", func(c net.Conn) {
			defer c.Close()
			_, _ = NewReader(c, 0).ReadFrame()
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			_, _ = c.Read(make([]byte, 1))
		}, func(err error) bool {
			var fe *FrameError
			return errors.As(err, &fe) && errors.Is(err, ErrNoStartBlock)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawServer(t, tt.serve)
			c := &Client{Addr: addr, ACKTimeout: 200 * time.Millisecond}
			defer c.Close()
			_, err := c.Send(context.Background(), []byte("MSH|x"))
			if err == nil || !tt.check(err) {
				t.Fatalf("Send error = %v (%T)", err, err)
			}
			if c.conn != nil {
				t.Fatal("connection kept after an error")
			}
		})
	}
}

func TestClientRedialsAfterError(t *testing.T) {
	n := 0
	addr := rawServer(t, func(c net.Conn) {
		defer c.Close()
		n++
		r := NewReader(c, 0)
		if _, err := r.ReadFrame(); err != nil {
			return
		}
		if n == 1 {
			return // first connection: close without reply
		}
		_ = WriteFrame(c, []byte("ok"))
	})
	c := &Client{Addr: addr, ACKTimeout: 2 * time.Second}
	defer c.Close()
	if _, err := c.Send(context.Background(), []byte("a")); err == nil {
		t.Fatal("first Send succeeded; want a connection error")
	}
	reply, err := c.Send(context.Background(), []byte("b"))
	if err != nil || string(reply) != "ok" {
		t.Fatalf("second Send = %q, %v", reply, err)
	}
}

func TestClientContextCancel(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		defer c.Close()
		_, _ = c.Read(make([]byte, 64))
		_, _ = c.Read(make([]byte, 1))
	})
	c := &Client{Addr: addr}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, []byte("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want the context's error", err)
	}
}

func TestClientDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now
	c := &Client{Addr: addr}
	_, err = c.Send(context.Background(), []byte("x"))
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("Send = %v, want a dial *net.OpError", err)
	}
}

// selfSigned makes a throwaway certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testpki.NewCA(t, "careflow test")
	return ca.Issue(t, testpki.Leaf{Use: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), ca.Pool()
}

func TestTLSRoundTrip(t *testing.T) {
	cert, pool := selfSigned(t)
	s := &Server{Handler: echo, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	addr := startServer(t, s)

	c := &Client{Addr: addr, TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer c.Close()
	reply, err := c.Send(context.Background(), []byte("secret"))
	if err != nil || string(reply) != "ACK:secret" {
		t.Fatalf("TLS Send = %q, %v", reply, err)
	}
	// A client that does not trust the certificate must not get through.
	bad := &Client{Addr: addr, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if _, err := bad.Send(context.Background(), []byte("x")); err == nil {
		t.Fatal("untrusted TLS client got a reply")
	}
}

// TestInteropMLLPSend sends a file with python3-hl7's mllp_send (Debian
// package python3-hl7; CI installs it) and checks it prints our ACK.
func TestInteropMLLPSend(t *testing.T) {
	bin := peer.Require(t, "mllp_send", "python3-hl7")
	ack := HandlerFunc(func(_ context.Context, req Request) []byte {
		if !strings.HasPrefix(string(req.Payload), "MSH|") {
			return []byte("MSH|^~\\&|||||||ACK||P|2.5\rMSA|AR|?\r")
		}
		return []byte("MSH|^~\\&|CAREFLOW||||||ACK||P|2.5\rMSA|AA|MSG00001\r")
	})
	addr := startServer(t, &Server{Handler: ack})
	host, port, _ := net.SplitHostPort(addr)
	msg := "MSH|^~\\&|LAB|HOSP|CAREFLOW|HOSP|20240101120000||ADT^A01|MSG00001|P|2.5\rPID|1||12345^^^HOSP^MR||DOE^JANE\r"
	file := filepath.Join(t.TempDir(), "adt.hl7")
	if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--loose", "-f", file, "-p", port, host).CombinedOutput()
	if err != nil {
		t.Fatalf("mllp_send: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "MSA|AA|MSG00001") {
		t.Fatalf("mllp_send did not report our ACK; output:\n%q", out)
	}
}

// A kept-alive connection the peer closed before this message is redialled
// once, transparently; a failure on a fresh connection, a timeout or a
// reply cut short is not retried, so no Send writes its frame twice
// without cause.
func TestClientRetriesOnlyStaleConnections(t *testing.T) {
	type conn struct {
		answer int // frames answered before the connection acts
		act    string
	}
	tests := []struct {
		name       string
		conns      []conn // what each successive connection does
		wantErr    func(error) bool
		wantFrames []int // frames each connection received
	}{
		{"peer closed the kept-alive connection: redialled", []conn{{1, "close"}, {1, "hold"}}, nil, []int{1, 1}},
		{"fresh connection closed before replying: not retried", []conn{{1, "close"}, {0, "read-close"}, {1, "hold"}},
			func(err error) bool { var oe *net.OpError; return errors.As(err, &oe) }, []int{1, 1}},
		{"timeout on a kept-alive connection: not retried", []conn{{1, "silent"}, {1, "hold"}},
			func(err error) bool { return errors.Is(err, ErrTimeout) }, []int{2}},
		{"reply cut short on a kept-alive connection: not retried", []conn{{1, "partial"}, {1, "hold"}},
			func(err error) bool { var oe *net.OpError; return errors.As(err, &oe) }, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var frames []int
			closed := make(chan struct{}, len(tt.conns))
			next := 0
			addr := rawServer(t, func(c net.Conn) {
				defer c.Close()
				mu.Lock()
				i := next
				next++
				frames = append(frames, 0)
				mu.Unlock()
				if i >= len(tt.conns) {
					return
				}
				plan := tt.conns[i]
				r := NewReader(c, 0)
				read := func() bool {
					_, err := r.ReadFrame()
					if err == nil {
						mu.Lock()
						frames[i]++
						mu.Unlock()
					}
					return err == nil
				}
				for range plan.answer {
					if !read() {
						return
					}
					_ = WriteFrame(c, []byte("ok"))
				}
				switch plan.act {
				case "close":
					closed <- struct{}{}
					return
				case "read-close":
					read()
				case "silent":
					read()
					_, _ = c.Read(make([]byte, 1)) // until the client gives up
				case "partial":
					if read() {
						_, _ = c.Write([]byte(sb + "MSH|partial"))
					}
				case "hold":
					for read() {
						_ = WriteFrame(c, []byte("ok"))
					}
				}
			})
			cl := &Client{Addr: addr, ACKTimeout: 300 * time.Millisecond}
			defer cl.Close()
			if reply, err := cl.Send(context.Background(), []byte("first")); err != nil || string(reply) != "ok" {
				t.Fatalf("first Send = %q, %v", reply, err)
			}
			if tt.conns[0].act == "close" {
				<-closed
				if tt.wantErr != nil {
					// The fresh-connection case: drop the stale one first,
					// so that the next Send dials.
					cl.Close()
				}
			}
			reply, err := cl.Send(context.Background(), []byte("second"))
			switch {
			case tt.wantErr == nil && (err != nil || string(reply) != "ok"):
				t.Fatalf("second Send = %q, %v; want ok", reply, err)
			case tt.wantErr != nil && (err == nil || !tt.wantErr(err)):
				t.Fatalf("second Send error = %v (%T)", err, err)
			}
			cl.Close()
			await.For(t, 2*time.Second, 5*time.Millisecond, func() error {
				mu.Lock()
				defer mu.Unlock()
				if fmt.Sprint(frames) != fmt.Sprint(tt.wantFrames) {
					return fmt.Errorf("frames per connection %v, want %v", frames, tt.wantFrames)
				}
				return nil
			})
		})
	}
}
