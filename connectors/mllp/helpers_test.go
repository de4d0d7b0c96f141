package mllp

// Test helpers for the server's connection policy: a throwaway PKI with
// client certificates, a ConnState recorder and a log capture.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/testpki"
)

// pki is a CA made for one test, a server certificate for 127.0.0.1 and a
// client certificate for "lab-sender", all generated in memory.
type pki struct {
	server *tls.Config // requires and verifies a client certificate
	client *tls.Config // presents the client certificate, trusts the CA
}

func newPKI(t testing.TB) pki {
	t.Helper()
	ca := testpki.NewCA(t, "careflow test CA")
	srv := ca.Issue(t, testpki.Leaf{CommonName: "careflow", Use: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	cli := ca.Issue(t, testpki.Leaf{CommonName: "lab-sender", DNSNames: []string{"lab-sender"}, Use: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return pki{
		server: &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: ca.Pool(),
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		client: &tls.Config{Certificates: []tls.Certificate{cli}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
	}
}

// events records ConnState calls.
type events struct {
	mu     sync.Mutex
	counts map[ConnState]int
	byConn map[string][]ConnState // remote address → its events in order
}

func newEvents() *events {
	return &events{counts: map[ConnState]int{}, byConn: map[string][]ConnState{}}
}

func (e *events) hook(remote net.Addr, st ConnState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counts[st]++
	e.byConn[remote.String()] = append(e.byConn[remote.String()], st)
}

func (e *events) count(st ConnState) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[st]
}

func (e *events) of(local net.Addr) []ConnState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.byConn[local.String()])
}

// waitCount polls until st has been reported at least n times.
func (e *events) waitCount(t testing.TB, st ConnState, n int) {
	t.Helper()
	await.For(t, 10*time.Second, 2*time.Millisecond, func() error {
		if got := e.count(st); got < n {
			return fmt.Errorf("%d %s events, want %d", got, st, n)
		}
		return nil
	})
}

// logLine is one captured log record, attributes flattened to strings.
type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// logCapture is a slog.Handler that keeps every record at every level.
type logCapture struct {
	mu    *sync.Mutex
	lines *[]logLine
	with  []slog.Attr
}

func newLogCapture() *logCapture {
	return &logCapture{mu: &sync.Mutex{}, lines: &[]logLine{}}
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	l := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.with {
		l.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.lines = append(*h.lines, l)
	return nil
}

func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &logCapture{mu: h.mu, lines: h.lines, with: append(slices.Clone(h.with), as...)}
}

func (h *logCapture) WithGroup(string) slog.Handler { return h }

// matching returns the captured lines whose "event" attribute is ev.
func (h *logCapture) matching(ev ConnState) []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logLine
	for _, l := range *h.lines {
		if l.attrs["event"] == ev.String() {
			out = append(out, l)
		}
	}
	return out
}

// discard is a logger for tests that look at events, not log lines.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// served returns the remote addresses of the connections s holds now.
func served(s *Server) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]bool{}
	for c := range s.conns {
		m[c.nc.RemoteAddr().String()] = true
	}
	return m
}

// waitServed polls until s holds exactly the connections whose local
// addresses are given.
func waitServed(t testing.TB, s *Server, want ...net.Conn) {
	t.Helper()
	await.For(t, 5*time.Second, 2*time.Millisecond, func() error {
		got := served(s)
		if len(got) != len(want) {
			return fmt.Errorf("server holds %d connections, want %d", len(got), len(want))
		}
		for i, c := range want {
			if !got[c.LocalAddr().String()] {
				return fmt.Errorf("connection %d (%s) not held", i, c.LocalAddr())
			}
		}
		return nil
	})
}

// waitIdle polls until no connection of s is mid-frame: a reply is read by
// the client a moment before the server marks its connection idle.
func waitIdle(t testing.TB, s *Server) {
	t.Helper()
	await.For(t, 5*time.Second, time.Millisecond, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for c := range s.conns {
			if c.active {
				return fmt.Errorf("connection %s still mid-frame", c.nc.RemoteAddr())
			}
		}
		return nil
	})
}

// waitClosedByServer polls until the server has closed c (a read returns
// EOF or a reset rather than timing out).
func waitClosedByServer(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a connection the server should have closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("server did not close %s within 5s", c.LocalAddr())
	}
}

// flood opens n connections to addr that send nothing, closed when the
// test ends.
func flood(t testing.TB, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}
