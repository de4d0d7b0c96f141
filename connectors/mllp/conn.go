package mllp

// This file is one connection's life: the TLS handshake, the wait for a
// first frame, then read → handle → reply until it ends.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// conn is one served connection. The fields below the line are guarded by
// Server.mu; limits.go reads them to choose a connection to evict.
type conn struct {
	nc       net.Conn // as accepted; closing it ends the connection from any goroutine
	rw       net.Conn // what frames are read from and written to: nc, or TLS over it (its own goroutine only)
	peer     string   // remote IP, the per-peer limit's key
	accepted time.Time
	cancel   context.CancelFunc

	// reading: between a frame's first byte and its last. active: from a
	// complete frame until its reply is written, while the handler runs.
	// Only an active connection is never closed to make room: a frame
	// still arriving is not acknowledged, so closing it loses nothing,
	// and protecting it would let connections that send one byte and
	// stop hold every slot for ReadTimeout.
	reading   bool
	active    bool
	frames    int       // frames answered so far
	idleSince time.Time // when the last reply was written
	evicted   bool      // closed to make room; already out of Server.conns
	evictedAt string    // the limit the newcomer met
}

// endConn runs when c's goroutine ends.
func (s *Server) endConn(c *conn) {
	c.cancel()
	_ = c.rw.Close() // over TLS, says close_notify when the handshake was done
	_ = c.nc.Close()
	s.mu.Lock()
	s.forgetLocked(c)
	evicted, limit, frames := c.evicted, c.evictedAt, c.frames
	s.mu.Unlock()
	if evicted {
		s.note(c.nc.RemoteAddr(), c.peer, StateEvicted, "mllp idle connection closed to make room for a new one",
			"limit", limit, "frames_answered", frames)
	}
	s.report(c.nc.RemoteAddr(), StateClosed)
}

// serveConn runs one connection's handshake, then its read → handle →
// reply loop.
func (s *Server) serveConn(ctx context.Context, c *conn) {
	// A hard stop (ctx) must unblock reads and writes.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.Close() })
	defer stop()
	var state *tls.ConnectionState
	if s.TLSConfig != nil {
		var ok bool
		if state, ok = s.handshake(ctx, c); !ok {
			return
		}
	}
	log := s.logger().With("remote", c.nc.RemoteAddr().String())
	r := NewReader(c.rw, s.maxMessageSize())
	// Until its first frame begins, a connection has FirstByteTimeout in
	// all: bytes that are not a frame do not buy it more time.
	firstBy := time.Now().Add(s.firstByteTimeout())
	started := false
	garbageLogged := false
	for {
		deadline := firstBy
		if started {
			deadline = time.Now().Add(s.idleTimeout())
		}
		_ = c.rw.SetReadDeadline(deadline)
		if err := r.waitFrame(); err != nil {
			if errors.Is(err, ErrTimeout) {
				if !started {
					if !s.closedByUs(c) {
						s.note(c.nc.RemoteAddr(), c.peer, StateFirstByteTimeout, "mllp connection sent no frame in time; closing",
							"timeout", s.firstByteTimeout())
					}
				} else {
					log.Debug("mllp connection idle, closing")
				}
			}
			return
		}
		if !s.setReading(c) {
			return // shutting down or evicted; the sender will resend on a new connection
		}
		received := time.Now()
		_ = c.rw.SetReadDeadline(received.Add(s.readTimeout()))
		payload, err := r.ReadFrame()
		switch {
		case err == nil, errors.Is(err, ErrTooLarge):
			started = true
			if !s.setActive(c) {
				return // closed while the frame arrived: it was never acknowledged
			}
		case errors.Is(err, ErrNoStartBlock):
			if !garbageLogged {
				log.Warn("mllp bytes outside a frame discarded", "err", err)
				garbageLogged = true
			}
			if !s.setIdle(c, false) {
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
		reply := s.Handler.ServeMLLP(ctx, Request{Payload: payload, Err: err, Remote: c.nc.RemoteAddr(), Received: received, TLS: state})
		if reply != nil {
			_ = c.rw.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
			if werr := WriteFrame(c.rw, reply); werr != nil {
				log.Warn("mllp write reply", "err", werr)
				return
			}
		}
		if !s.setIdle(c, true) {
			return
		}
	}
}

// handshake does c's TLS handshake within HandshakeTimeout, reporting and
// logging a failure. It is explicit, not left to the first read, so that a
// connection that never starts one is bounded by HandshakeTimeout rather
// than IdleTimeout, and a refused one is logged.
func (s *Server) handshake(ctx context.Context, c *conn) (*tls.ConnectionState, bool) {
	tc := tls.Server(c.nc, s.TLSConfig)
	c.rw = tc
	timeout := s.handshakeTimeout()
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := tc.HandshakeContext(hctx)
	if err == nil {
		st := tc.ConnectionState()
		return &st, true
	}
	if ctx.Err() != nil || s.closedByUs(c) {
		return nil, false // a stop or an eviction, not the peer's failure
	}
	var reason string
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout):
		reason = fmt.Sprintf("no handshake within %s", timeout)
	case errors.Is(err, io.EOF):
		reason = "connection closed during the handshake"
	default:
		reason = err.Error() // Go's words: never the certificate itself
	}
	s.note(c.nc.RemoteAddr(), c.peer, StateHandshakeFailed, "mllp TLS handshake failed; closing", "reason", reason)
	return nil, false
}

// setReading marks c as receiving a frame; it reports false once the
// server is shutting down or c was evicted, telling the connection to end.
func (s *Server) setReading(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.reading = true
	return !s.shutdown && !c.evicted
}

// setActive marks c as handling a complete frame, which from now on is
// never closed to make room; it reports false when c was evicted while
// the frame arrived. A shutdown that began meanwhile lets the frame be
// handled: Shutdown waits for frames already arriving.
func (s *Server) setActive(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.reading, c.active = false, true
	return !c.evicted
}

// setIdle marks c idle again, after a reply (answered) or after bytes that
// were not a frame; it reports false as setActive does.
func (s *Server) setIdle(c *conn, answered bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.reading, c.active = false, false
	if answered {
		c.frames++
		c.idleSince = time.Now()
	}
	return !s.shutdown && !c.evicted
}

// closedByUs reports whether c was closed by the server (shutdown or
// eviction), so that the read or handshake error that follows is not
// reported as the peer's.
func (s *Server) closedByUs(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown || c.evicted
}
