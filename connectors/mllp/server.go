package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Request is one frame received by a Server.
type Request struct {
	Payload  []byte
	Err      error // non-nil (matching ErrTooLarge) when the frame was oversize: Payload holds its prefix
	Remote   net.Addr
	Received time.Time // when the frame's first byte arrived
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

// ConnState is a connection event reported to Server.ConnState.
type ConnState int

const (
	// StateOpen: a connection was accepted and will be served.
	StateOpen ConnState = iota + 1
	// StateClosed: a served connection ended.
	StateClosed
	// StateRejected: a connection was closed at once because the server
	// already had MaxConnections.
	StateRejected
)

func (s ConnState) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateClosed:
		return "closed"
	case StateRejected:
		return "rejected"
	}
	return "unknown"
}

// Server defaults.
const (
	DefaultReadTimeout    = 30 * time.Second
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultWriteTimeout   = 30 * time.Second
	DefaultMaxConnections = 100
)

// Server accepts MLLP connections and serves each one frame at a time:
// read a frame, call the Handler, write its reply, read the next. Zero
// values of the fields mean their documented defaults. Fields must not
// change once Serve has been called.
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
	// MaxConnections caps concurrent connections; beyond it new ones are
	// closed at once (logged, and reported to ConnState), so one
	// misbehaving sender cannot starve the rest. Default: 100.
	MaxConnections int
	// TLSConfig, when set, makes the server speak MLLP over TLS.
	TLSConfig *tls.Config
	// Logger receives connection events. Default: slog.Default().
	Logger *slog.Logger
	// ConnState, when set, is called on every connection event (for
	// gauges and counters). It must not block.
	ConnState func(remote net.Addr, state ConnState)

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	addr      net.Addr
	shutdown  bool
	wg        sync.WaitGroup // connection goroutines
	drained   chan struct{}  // closed when shut down and the last connection ended
}

type conn struct {
	nc     net.Conn
	cancel context.CancelFunc
	active bool // between a frame's first byte and its reply being written; guarded by Server.mu
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
// Shutdown first for a graceful one. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("mllp: Server.Handler is nil")
	}
	if s.TLSConfig != nil {
		ln = tls.NewListener(ln, s.TLSConfig)
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

func (s *Server) startConn(ctx context.Context, nc net.Conn) {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	if len(s.conns) >= s.maxConnections() {
		s.mu.Unlock()
		_ = nc.Close()
		s.logger().Warn("mllp connection refused: at MaxConnections", "remote", nc.RemoteAddr().String(), "max", s.maxConnections())
		s.report(nc.RemoteAddr(), StateRejected)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &conn{nc: nc, cancel: cancel}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.report(nc.RemoteAddr(), StateOpen)
	go func() {
		defer s.wg.Done()
		defer s.endConn(c)
		s.serveConn(cctx, c)
	}()
}

func (s *Server) endConn(c *conn) {
	c.cancel()
	_ = c.nc.Close()
	s.mu.Lock()
	delete(s.conns, c)
	if s.shutdown && len(s.conns) == 0 {
		closeOnce(s.drained)
	}
	s.mu.Unlock()
	s.report(c.nc.RemoteAddr(), StateClosed)
}

// serveConn runs one connection's read → handle → reply loop.
func (s *Server) serveConn(ctx context.Context, c *conn) {
	// A hard stop (ctx) must unblock reads and writes.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.Close() })
	defer stop()
	log := s.logger().With("remote", c.nc.RemoteAddr().String())
	r := NewReader(c.nc, s.maxMessageSize())
	garbageLogged := false
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(s.idleTimeout()))
		if err := r.waitFrame(); err != nil {
			if errors.Is(err, ErrTimeout) {
				log.Debug("mllp connection idle, closing")
			}
			return
		}
		if !s.setActive(c, true) {
			return // shutting down; the sender will resend on a new connection
		}
		received := time.Now()
		_ = c.nc.SetReadDeadline(received.Add(s.readTimeout()))
		payload, err := r.ReadFrame()
		switch {
		case err == nil, errors.Is(err, ErrTooLarge):
		case errors.Is(err, ErrNoStartBlock):
			if !garbageLogged {
				log.Warn("mllp bytes outside a frame discarded", "err", err)
				garbageLogged = true
			}
			if !s.setActive(c, false) {
				return
			}
			continue
		default:
			// Timeout, truncation or a broken connection: nothing complete
			// to hand over, and no way to resynchronise reliably.
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("mllp frame incomplete, closing connection", "err", err)
			}
			return
		}
		reply := s.Handler.ServeMLLP(ctx, Request{Payload: payload, Err: err, Remote: c.nc.RemoteAddr(), Received: received})
		if reply != nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
			if werr := WriteFrame(c.nc, reply); werr != nil {
				log.Warn("mllp write reply", "err", werr)
				return
			}
		}
		if !s.setActive(c, false) {
			return
		}
	}
}

// setActive marks c busy or idle; it reports false once the server is
// shutting down, telling the connection to end.
func (s *Server) setActive(c *conn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.active = active
	return !s.shutdown
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
		if !c.active {
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
func (s *Server) readTimeout() time.Duration {
	return orDefault(s.ReadTimeout, DefaultReadTimeout)
}
func (s *Server) idleTimeout() time.Duration {
	return orDefault(s.IdleTimeout, DefaultIdleTimeout)
}
func (s *Server) writeTimeout() time.Duration {
	return orDefault(s.WriteTimeout, DefaultWriteTimeout)
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
