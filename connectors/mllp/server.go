package mllp

// This file is the Server's public face: its configuration, Serve and
// Shutdown. One connection's life is in conn.go, who gets a connection slot
// in limits.go, and the log rate limit in ratelog.go.

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/careflow-health/careflow/internal/ratelog"
)

// Request is one frame received by a Server.
type Request struct {
	Payload  []byte
	Err      error // non-nil (matching ErrTooLarge) when the frame was oversize: Payload holds its prefix
	Remote   net.Addr
	Received time.Time // when the frame's first byte arrived
	// TLS is the connection's verified TLS state (nil over plain TCP), so
	// that a handler can check the client certificate's subject or SANs
	// against an allow-list. Every frame of one connection shares it: do
	// not modify it.
	TLS *tls.ConnectionState
}

// Handler answers one frame. The returned reply is the payload to frame and
// send back; nil sends nothing. HL7 allows one message in flight per
// connection, so ServeMLLP is never called concurrently for one connection
// (it is for different connections).
type Handler interface {
	ServeMLLP(ctx context.Context, req Request) (reply []byte)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req Request) []byte

// ServeMLLP calls f.
func (f HandlerFunc) ServeMLLP(ctx context.Context, req Request) []byte { return f(ctx, req) }

// ConnState is a connection event reported to Server.ConnState. Every
// StateOpen is followed, once, by StateClosed; StateEvicted,
// StateHandshakeFailed and StateFirstByteTimeout say why a connection is
// about to close and come before its StateClosed. StateRejected is a
// connection never opened, so no StateClosed follows it.
type ConnState int

const (
	// StateOpen: a connection was accepted and will be served.
	StateOpen ConnState = iota + 1
	// StateClosed: a served connection ended.
	StateClosed
	// StateRejected: a new connection was closed at once because the
	// server, or its peer, was at its connection limit and every
	// connection that could have made room was in the middle of a frame.
	StateRejected
	// StateEvicted: an idle connection was closed to make room for a new
	// one at a connection limit.
	StateEvicted
	// StateHandshakeFailed: the TLS handshake failed or did not finish
	// within HandshakeTimeout.
	StateHandshakeFailed
	// StateFirstByteTimeout: the connection sent nothing of a first frame
	// within FirstByteTimeout.
	StateFirstByteTimeout
)

// String returns the state's name as a metric label: "open", "closed",
// "rejected", "evicted", "handshake_failed" or "first_byte_timeout".
func (s ConnState) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateClosed:
		return "closed"
	case StateRejected:
		return "rejected"
	case StateEvicted:
		return "evicted"
	case StateHandshakeFailed:
		return "handshake_failed"
	case StateFirstByteTimeout:
		return "first_byte_timeout"
	}
	return "unknown"
}

// Server defaults.
const (
	DefaultReadTimeout           = 30 * time.Second
	DefaultIdleTimeout           = 10 * time.Minute
	DefaultWriteTimeout          = 30 * time.Second
	DefaultMaxConnections        = 100
	DefaultMaxConnectionsPerPeer = 20
	DefaultHandshakeTimeout      = 10 * time.Second
	DefaultFirstByteTimeout      = 30 * time.Second
)

// Server accepts MLLP connections and serves each one frame at a time:
// read a frame, call the Handler, write its reply, read the next. Zero
// values of the fields mean their documented defaults. Fields must not
// change once Serve has been called.
//
// Connection limits cannot be used to lock a sender out: at a limit, the
// newcomer takes the place of an idle connection (closed, and reported as
// StateEvicted) and is refused only when every connection that could make
// room is in the middle of a frame. Connections that have never sent a
// complete frame go first, the longest-waiting first, then the
// longest-idle of those that have; so a flood of silent connections,
// however large, cannot keep out a sender that connects and sends.
type Server struct {
	Handler Handler
	// MaxMessageSize is the largest frame accepted. Default: 4 MiB.
	MaxMessageSize int
	// ReadTimeout is the time allowed to finish a frame once its first
	// byte has arrived. On expiry the connection is closed and nothing is
	// handed to the Handler. Default: 30s.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection idle between frames. Default: 10m.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one reply. Default: 30s.
	WriteTimeout time.Duration
	// MaxConnections caps concurrent connections. At the cap a new
	// connection closes an idle one (see Server) or, when none is idle,
	// is refused (logged, and reported to ConnState). Default: 100.
	MaxConnections int
	// MaxConnectionsPerPeer caps concurrent connections from one remote
	// IP address (whatever the port), with the same policy as
	// MaxConnections but choosing only among that peer's connections. It
	// never exceeds MaxConnections. Default: 20.
	MaxConnectionsPerPeer int
	// HandshakeTimeout bounds the TLS handshake, done as soon as a
	// connection is accepted; a connection that fails it or does not
	// finish it in time is closed (logged, and reported as
	// StateHandshakeFailed). Default: 10s.
	HandshakeTimeout time.Duration
	// FirstByteTimeout closes a connection that has not sent the first
	// byte of its first frame this long after it was accepted (after the
	// TLS handshake), reported as StateFirstByteTimeout. It is short
	// because a sender that connects sends at once; IdleTimeout applies
	// from the first frame on. Default: 30s (or IdleTimeout, if shorter).
	FirstByteTimeout time.Duration
	// TLSConfig, when set, makes the server speak MLLP over TLS.
	TLSConfig *tls.Config
	// Logger receives connection events. Refusals, evictions, failed
	// handshakes and first-byte timeouts are logged at Warn at most once a
	// minute per peer IP and kind, with the count of those suppressed
	// since. Default: slog.Default().
	Logger *slog.Logger
	// ConnState, when set, is called on every connection event (for
	// gauges and counters). It must not block.
	ConnState func(remote net.Addr, state ConnState)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	peers     map[string]map[*conn]struct{} // peer IP → its connections
	addr      net.Addr
	shutdown  bool
	wg        sync.WaitGroup // connection goroutines
	drained   chan struct{}  // closed when shut down and the last connection ended
	limiter   ratelog.Limiter
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Addr returns the address of the first listener being served, or nil
// before Serve has started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve accepts connections on ln until ctx ends or Shutdown is called,
// and returns once every connection it started has ended. Ending ctx is a
// hard stop: connections are closed and handlers' contexts cancelled; call
// Shutdown first for a graceful one. Serve closes ln. With TLSConfig set,
// ln must be a plain TCP listener: the server does the handshake itself.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("mllp: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.peers = map[string]map[*conn]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	if s.addr == nil {
		s.addr = ln.Addr()
	}
	s.mu.Unlock()

	// Unblock Accept when ctx ends; stop() waits for this watcher.
	ctx, cancel := context.WithCancel(ctx)
	stopWatch := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer func() {
		stopWatch()
		cancel() // hard-stops connections still running (see conn contexts)
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()

	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isShutdown() || errors.Is(err, net.ErrClosed) {
				return s.waitConns(ctx)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Transient accept failures (e.g. out of fds) must not end
				// the server; back off as net/http does.
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.logger().Warn("mllp accept", "err", err, "retry_in", tempDelay)
				t := time.NewTimer(tempDelay)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
				continue
			}
			s.logger().Error("mllp accept", "addr", ln.Addr().String(), "err", err)
			_ = s.waitConns(ctx)
			return err
		}
		tempDelay = 0
		s.startConn(ctx, nc)
	}
}

// waitConns waits for connection goroutines; ctx ending makes their
// contexts end too (they derive from it), so this cannot hang past the
// handlers' own respect for ctx.
func (s *Server) waitConns(ctx context.Context) error {
	stop := context.AfterFunc(ctx, s.closeAll)
	defer stop()
	s.wg.Wait()
	return nil
}

// Shutdown stops accepting, closes idle connections and waits for
// in-flight handlers to finish and their replies to be written. If ctx ends
// first, remaining connections are closed, their handlers' contexts
// cancelled, and ctx's error returned. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shutdown {
		s.shutdown = true
		s.drained = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.drained)
		}
	}
	drained := s.drained
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for c := range s.conns {
		if !c.active && !c.reading {
			_ = c.nc.Close()
		}
	}
	s.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		s.closeAll()
		return ctx.Err()
	}
}

// closeAll hard-stops every connection.
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.cancel()
		_ = c.nc.Close()
	}
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

func (s *Server) report(remote net.Addr, st ConnState) {
	if s.ConnState != nil {
		s.ConnState(remote, st)
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) maxMessageSize() int { return orDefault(s.MaxMessageSize, DefaultMaxMessageSize) }
func (s *Server) maxConnections() int { return orDefault(s.MaxConnections, DefaultMaxConnections) }
func (s *Server) maxConnectionsPerPeer() int {
	return min(orDefault(s.MaxConnectionsPerPeer, DefaultMaxConnectionsPerPeer), s.maxConnections())
}
func (s *Server) readTimeout() time.Duration {
	return orDefault(s.ReadTimeout, DefaultReadTimeout)
}
func (s *Server) idleTimeout() time.Duration {
	return orDefault(s.IdleTimeout, DefaultIdleTimeout)
}
func (s *Server) writeTimeout() time.Duration {
	return orDefault(s.WriteTimeout, DefaultWriteTimeout)
}
func (s *Server) handshakeTimeout() time.Duration {
	return orDefault(s.HandshakeTimeout, DefaultHandshakeTimeout)
}
func (s *Server) firstByteTimeout() time.Duration {
	return min(orDefault(s.FirstByteTimeout, DefaultFirstByteTimeout), s.idleTimeout())
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
