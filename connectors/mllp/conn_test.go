package mllp

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A TLS handshake that fails, or never finishes, closes the connection at
// once; it is reported and logged with the peer and a short reason.
func TestServerHandshakeFailures(t *testing.T) {
	p := newPKI(t)
	noCert := p.client.Clone()
	noCert.Certificates = nil
	tests := []struct {
		name   string
		client func(addr string) (net.Conn, error)
		reason string // substring of the logged reason
	}{
		{"never starts", func(addr string) (net.Conn, error) {
			return net.DialTimeout("tcp", addr, 2*time.Second)
		}, "no handshake within 100ms"},
		{"no client certificate", func(addr string) (net.Conn, error) {
			c, err := tls.Dial("tcp", addr, noCert)
			if err != nil {
				return nil, nil // TLS 1.2: refused within Dial
			}
			// TLS 1.3: the client finishes first; the server refuses
			// after reading its (empty) certificate.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Read(make([]byte, 1))
			return c, nil
		}, "certificate"},
		{"speaks plain MLLP to a TLS port", func(addr string) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err == nil {
				_ = WriteFrame(c, []byte("MSH|^~\\&|"))
			}
			return c, err
		}, "tls:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEvents()
			logs := newLogCapture()
			var calls atomic.Int32
			h := HandlerFunc(func(context.Context, Request) []byte { calls.Add(1); return nil })
			s := &Server{Handler: h, TLSConfig: p.server, HandshakeTimeout: 100 * time.Millisecond,
				ConnState: ev.hook, Logger: slog.New(logs)}
			addr := startServer(t, s)
			c, err := tt.client(addr)
			if err != nil {
				t.Fatal(err)
			}
			if c != nil {
				defer c.Close()
			}
			ev.waitCount(t, StateHandshakeFailed, 1)
			ev.waitCount(t, StateClosed, 1)
			if c != nil {
				if got, want := ev.of(c.LocalAddr()), []ConnState{StateOpen, StateHandshakeFailed, StateClosed}; !slices.Equal(got, want) {
					t.Fatalf("events %v, want %v", got, want)
				}
			}
			lines := logs.matching(StateHandshakeFailed)
			if len(lines) != 1 {
				t.Fatalf("%d handshake failure log lines, want 1", len(lines))
			}
			l := lines[0]
			if l.level != slog.LevelWarn || l.attrs["peer"] != "127.0.0.1" || !strings.Contains(l.attrs["reason"], tt.reason) {
				t.Fatalf("log line %+v, want a warning with peer 127.0.0.1 and a reason containing %q", l, tt.reason)
			}
			if calls.Load() != 0 {
				t.Fatal("handler called on a connection that never completed its handshake")
			}
		})
	}
}

// A connection that sends nothing of a first frame within FirstByteTimeout
// (counted after the TLS handshake) is closed, long before IdleTimeout;
// bytes that are not a frame do not buy it more time.
func TestServerFirstByteTimeout(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name  string
		tls   bool
		first string // sent before going silent
	}{
		{"plain, silent", false, ""},
		{"plain, garbage then silent", false, "GET / HTTP/1.0\r\n"},
		{"TLS, handshakes then silent", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEvents()
			logs := newLogCapture()
			s := &Server{Handler: echo, FirstByteTimeout: 100 * time.Millisecond, HandshakeTimeout: 5 * time.Second,
				ConnState: ev.hook, Logger: slog.New(logs)}
			if tt.tls {
				s.TLSConfig = p.server
			}
			addr := startServer(t, s)
			var c net.Conn
			var err error
			if tt.tls {
				c, err = tls.Dial("tcp", addr, p.client)
			} else {
				c, err = net.DialTimeout("tcp", addr, 2*time.Second)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.first != "" {
				if _, err := c.Write([]byte(tt.first)); err != nil {
					t.Fatal(err)
				}
			}
			waitClosedByServer(t, c)
			ev.waitCount(t, StateClosed, 1)
			if got, want := ev.of(c.LocalAddr()), []ConnState{StateOpen, StateFirstByteTimeout, StateClosed}; !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
			if lines := logs.matching(StateFirstByteTimeout); len(lines) != 1 || lines[0].attrs["peer"] != "127.0.0.1" {
				t.Fatalf("first-byte timeout log lines %+v, want one naming the peer", lines)
			}
		})
	}
}

// Once a connection has sent a frame, only IdleTimeout closes it.
func TestServerFirstByteTimeoutEndsWithFirstFrame(t *testing.T) {
	ev := newEvents()
	s := &Server{Handler: echo, FirstByteTimeout: 50 * time.Millisecond, ConnState: ev.hook, Logger: discard()}
	c := dial(t, startServer(t, s))
	r := NewReader(c, 0)
	if got := roundTrip(t, c, r, "one"); got != "ACK:one" {
		t.Fatalf("reply %q", got)
	}
	// Proving that something does not happen takes waiting past the
	// moment it would have: four first-byte timeouts.
	time.Sleep(200 * time.Millisecond)
	if got := roundTrip(t, c, r, "two"); got != "ACK:two" {
		t.Fatalf("reply %q", got)
	}
	if n := ev.count(StateFirstByteTimeout); n != 0 {
		t.Fatalf("%d first-byte timeouts for a working connection", n)
	}
}

// The handler sees the verified client certificate over TLS, and no TLS
// state over plain TCP.
func TestServerRequestTLS(t *testing.T) {
	p := newPKI(t)
	for _, useTLS := range []bool{false, true} {
		var seen atomic.Pointer[tls.ConnectionState]
		var called atomic.Bool
		h := HandlerFunc(func(_ context.Context, req Request) []byte {
			seen.Store(req.TLS)
			called.Store(true)
			return []byte("ok")
		})
		s := &Server{Handler: h, Logger: discard()}
		cl := &Client{ACKTimeout: 5 * time.Second}
		if useTLS {
			s.TLSConfig, cl.TLSConfig = p.server, p.client
		}
		cl.Addr = startServer(t, s)
		if _, err := cl.Send(context.Background(), []byte("x")); err != nil {
			t.Fatalf("TLS %v: %v", useTLS, err)
		}
		cl.Close()
		got := seen.Load()
		switch {
		case !called.Load():
			t.Fatal("handler not called")
		case !useTLS && got != nil:
			t.Fatal("Request.TLS set over plain TCP")
		case useTLS && (got == nil || !got.HandshakeComplete || len(got.VerifiedChains) == 0 ||
			got.PeerCertificates[0].Subject.CommonName != "lab-sender"):
			t.Fatalf("Request.TLS = %+v, want the verified lab-sender certificate", got)
		}
	}
}
