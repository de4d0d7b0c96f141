package mllp

// This file decides who gets a connection slot. At MaxConnections, or at a
// peer's MaxConnectionsPerPeer, a newcomer takes the place of an idle
// connection rather than being turned away, so that idle or silent
// connections (a flood, a sender that leaks them) cannot lock out a sender
// with something to say.

import (
	"context"
	"iter"
	"maps"
	"net"
	"time"
)

// The limits a newcomer can meet, as logged.
const (
	limitServer = "max_connections"
	limitPeer   = "max_connections_per_peer"
)

// startConn admits nc, making room if it must, and starts its goroutine.
func (s *Server) startConn(ctx context.Context, nc net.Conn) {
	remote := nc.RemoteAddr()
	peer := peerOf(remote)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	victim, limit, max, ok := s.makeRoomLocked(peer)
	if !ok {
		s.mu.Unlock()
		_ = nc.Close()
		s.note(remote, peer, StateRejected, "mllp connection refused: at its limit, and every connection is mid-frame",
			"limit", limit, "max", max)
		return
	}
	if victim != nil {
		// The victim's own goroutine reports and logs the eviction as it
		// ends, so that StateEvicted comes before its StateClosed.
		victim.evicted = true
		victim.evictedAt = limit
		s.forgetLocked(victim)
		_ = victim.nc.Close()
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &conn{nc: nc, rw: nc, peer: peer, accepted: time.Now(), cancel: cancel}
	s.conns[c] = struct{}{}
	if s.peers[peer] == nil {
		s.peers[peer] = map[*conn]struct{}{}
	}
	s.peers[peer][c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.report(remote, StateOpen)
	go func() {
		defer s.wg.Done()
		defer s.endConn(c)
		s.serveConn(cctx, c)
	}()
}

// makeRoomLocked checks the limits for a newcomer from peer. ok is false
// when it must be refused; otherwise victim, if not nil, is the connection
// to close first, and limit and max say which limit was met.
func (s *Server) makeRoomLocked(peer string) (victim *conn, limit string, max int, ok bool) {
	if pc := s.peers[peer]; len(pc) >= s.maxConnectionsPerPeer() {
		// Only the peer's own connections: one sender's flood must not
		// cost another sender its connection.
		v := pickVictim(maps.Keys(pc), nil)
		return v, limitPeer, s.maxConnectionsPerPeer(), v != nil
	}
	if len(s.conns) >= s.maxConnections() {
		v := pickVictim(maps.Keys(s.conns), func(p string) int { return len(s.peers[p]) })
		return v, limitServer, s.maxConnections(), v != nil
	}
	return nil, "", 0, true
}

// pickVictim returns the connection among cands to close to make room, or
// nil when every one is mid-frame. peerLoad, when not nil, gives a peer's
// connection count, to take from the peer holding the most.
func pickVictim(cands iter.Seq[*conn], peerLoad func(peer string) int) *conn {
	var best *conn
	for c := range cands {
		if c.active || c.evicted {
			continue
		}
		if best == nil || evictBefore(c, best, peerLoad) {
			best = c
		}
	}
	return best
}

// evictBefore reports whether a should be closed before b. A connection
// that has never answered a frame (still handshaking, silent, or stuck in
// its first frame) goes before one that has: a working sender is worth
// more than a silent one. Then a working sender between messages goes
// before one whose next frame is arriving. Among equals, the peer holding
// the most connections goes first (when peerLoad is given); then, among
// silent ones, the longest-waiting, so that a sender that has just
// connected is never the one the next flood connection pushes out; among
// working ones, the longest idle.
func evictBefore(a, b *conn, peerLoad func(string) int) bool {
	if ta, tb := evictTier(a), evictTier(b); ta != tb {
		return ta < tb
	}
	if peerLoad != nil && a.peer != b.peer {
		if la, lb := peerLoad(a.peer), peerLoad(b.peer); la != lb {
			return la > lb
		}
	}
	if a.frames == 0 {
		return a.accepted.Before(b.accepted)
	}
	return a.idleSince.Before(b.idleSince)
}

// evictTier orders connections for eviction: silent ones (no frame
// answered yet, whatever they are doing), then working ones between
// frames, then working ones receiving their next frame.
func evictTier(c *conn) int {
	switch {
	case c.frames == 0:
		return 0
	case !c.reading:
		return 1
	}
	return 2
}

// forgetLocked takes c out of the server's accounting; it is safe to call
// twice (an evicted connection is forgotten when evicted, so that its slot
// is free at once, and again as it ends).
func (s *Server) forgetLocked(c *conn) {
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if pc := s.peers[c.peer]; pc != nil {
		delete(pc, c)
		if len(pc) == 0 {
			delete(s.peers, c.peer)
		}
	}
	if s.shutdown && len(s.conns) == 0 {
		closeOnce(s.drained)
	}
}

// peerOf is the per-peer limit's key for remote: its IP address, without
// the port.
func peerOf(remote net.Addr) string {
	if ta, ok := remote.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return remote.String()
	}
	return host
}

// note reports a refusal, eviction, failed handshake or first-byte timeout
// to ConnState, and logs it within the rate limit.
func (s *Server) note(remote net.Addr, peer string, st ConnState, msg string, attrs ...any) {
	s.report(remote, st)
	// A flood costs a line a minute per peer and kind, not a line a
	// connection.
	ok, suppressed := s.limiter.Allow(peer+" "+st.String(), time.Now())
	if !ok {
		return
	}
	args := make([]any, 0, len(attrs)+8)
	args = append(args, "remote", remote.String(), "peer", peer, "event", st.String())
	args = append(args, attrs...)
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	s.logger().Warn(msg, args...)
}
