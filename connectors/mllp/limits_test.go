package mllp

import (
	"context"
	"crypto/tls"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// A flood of idle connections from the sender's own address, larger than
// every limit, does not keep the sender out: it connects, is answered, and
// its connection survives a second flood.
func TestServerFloodDoesNotLockOut(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name        string
		max, perMax int
		tls         bool
	}{
		{"plain, default limits", 0, 0, false},
		{"plain, MaxConnections below MaxConnectionsPerPeer", 10, 50, false},
		{"TLS flood that never handshakes", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEvents()
			var sawCN atomic.Value
			sawCN.Store("")
			h := HandlerFunc(func(ctx context.Context, req Request) []byte {
				if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
					sawCN.Store(req.TLS.PeerCertificates[0].Subject.CommonName)
				}
				return echo(ctx, req)
			})
			s := &Server{Handler: h, MaxConnections: tt.max, MaxConnectionsPerPeer: tt.perMax, ConnState: ev.hook, Logger: discard()}
			if tt.tls {
				s.TLSConfig = p.server
			}
			addr := startServer(t, s)
			const n = 200
			flood(t, addr, n)
			ev.waitCount(t, StateOpen, n) // every flood connection accepted first

			var c net.Conn
			var err error
			if tt.tls {
				c, err = tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, p.client)
			} else {
				c, err = net.DialTimeout("tcp", addr, 2*time.Second)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := NewReader(c, 0)
			if got := roundTrip(t, c, r, "MSH|first"); got != "ACK:MSH|first" {
				t.Fatalf("reply %q", got)
			}
			waitIdle(t, s)
			flood(t, addr, n)
			ev.waitCount(t, StateOpen, 2*n+1)
			if got := roundTrip(t, c, r, "MSH|second"); got != "ACK:MSH|second" {
				t.Fatalf("reply after the second flood %q", got)
			}
			if cn := sawCN.Load().(string); tt.tls && cn != "lab-sender" {
				t.Fatalf("handler saw client certificate %q, want lab-sender", cn)
			}
			if got := ev.count(StateRejected); got != 0 {
				t.Fatalf("%d connections refused; idle ones should have been evicted instead", got)
			}
			if limit := min(orDefault(tt.max, DefaultMaxConnections), orDefault(tt.perMax, DefaultMaxConnectionsPerPeer)); len(served(s)) > limit {
				t.Fatalf("server holds %d connections, limit %d", len(served(s)), limit)
			}
		})
	}
}

// At a peer's limit the newcomer takes the place of one of that peer's
// idle connections: silent ones first, the longest-waiting first, then the
// longest idle of those that have sent frames.
func TestServerPerPeerEviction(t *testing.T) {
	ev := newEvents()
	s := &Server{Handler: echo, MaxConnectionsPerPeer: 3, ConnState: ev.hook, Logger: discard()}
	addr := startServer(t, s)
	a := dial(t, addr)
	ar := NewReader(a, 0)
	if got := roundTrip(t, a, ar, "a1"); got != "ACK:a1" {
		t.Fatalf("reply %q", got)
	}
	waitIdle(t, s)
	b := dial(t, addr)
	waitServed(t, s, a, b)
	c := dial(t, addr)
	waitServed(t, s, a, b, c)

	d := dial(t, addr) // evicts b: silent, and waiting longer than c
	waitServed(t, s, a, c, d)
	waitClosedByServer(t, b)
	e := dial(t, addr) // evicts c
	waitServed(t, s, a, d, e)
	waitClosedByServer(t, c)

	// Now every connection has answered a frame: the longest idle goes.
	for _, x := range []struct {
		c   net.Conn
		msg string
	}{{a, "a2"}, {d, "d1"}, {e, "e1"}} {
		if got := roundTrip(t, x.c, NewReader(x.c, 0), x.msg); got != "ACK:"+x.msg {
			t.Fatalf("reply %q", got)
		}
		waitIdle(t, s)
	}
	f := dial(t, addr) // evicts a, idle since "a2"
	waitServed(t, s, d, e, f)
	waitClosedByServer(t, a)

	ev.waitCount(t, StateClosed, 3)
	if got := ev.count(StateEvicted); got != 3 {
		t.Fatalf("%d evictions reported, want 3", got)
	}
	if got, want := ev.of(b.LocalAddr()), []ConnState{StateOpen, StateEvicted, StateClosed}; !slices.Equal(got, want) {
		t.Fatalf("events of the evicted connection %v, want %v", got, want)
	}
}

// A newcomer is refused only when every connection that could make room is
// in the middle of a frame; once one is idle again, the next newcomer
// takes its place.
func TestServerRefusesOnlyWhenAllMidFrame(t *testing.T) {
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, req Request) []byte {
		if string(req.Payload) == "slow" {
			entered <- struct{}{}
			<-release
		}
		return echo(ctx, req)
	})
	ev := newEvents()
	s := &Server{Handler: h, MaxConnectionsPerPeer: 2, ConnState: ev.hook, Logger: discard()}
	addr := startServer(t, s)
	a, b := dial(t, addr), dial(t, addr)
	for _, c := range []net.Conn{a, b} {
		if err := WriteFrame(c, []byte("slow")); err != nil {
			t.Fatal(err)
		}
	}
	<-entered
	<-entered

	c := dial(t, addr)
	ev.waitCount(t, StateRejected, 1)
	waitClosedByServer(t, c)
	if got := ev.count(StateEvicted); got != 0 {
		t.Fatalf("%d mid-frame connections evicted", got)
	}

	close(release)
	for _, x := range []net.Conn{a, b} {
		_ = x.SetReadDeadline(time.Now().Add(5 * time.Second))
		if reply, err := NewReader(x, 0).ReadFrame(); err != nil || string(reply) != "ACK:slow" {
			t.Fatalf("in-flight reply %q, %v", reply, err)
		}
	}
	if got := ev.of(c.LocalAddr()); !slices.Equal(got, []ConnState{StateRejected}) {
		t.Fatalf("events of the refused connection %v, want only rejected", got)
	}
	waitIdle(t, s)
	d := dial(t, addr)
	if got := roundTrip(t, d, NewReader(d, 0), "d"); got != "ACK:d" {
		t.Fatalf("reply %q", got)
	}
	ev.waitCount(t, StateClosed, 1)
	if got := ev.count(StateEvicted); got != 1 {
		t.Fatalf("%d evictions, want 1", got)
	}
	if got := ev.count(StateRejected); got != 1 {
		t.Fatalf("%d refusals, want 1", got)
	}
}

// The victim order, for both limits.
func TestEvictBefore(t *testing.T) {
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	load := map[string]int{"10.0.0.1": 5, "10.0.0.2": 1}
	tests := []struct {
		name  string
		cands []*conn
		load  bool
		want  int // index in cands; -1 for none
	}{
		{"silent before working", []*conn{
			{peer: "10.0.0.1", accepted: at(0), frames: 3, idleSince: at(1)},
			{peer: "10.0.0.1", accepted: at(5)},
		}, false, 1},
		{"longest-waiting silent first", []*conn{
			{peer: "10.0.0.1", accepted: at(3)},
			{peer: "10.0.0.1", accepted: at(1)},
			{peer: "10.0.0.1", accepted: at(2)},
		}, false, 1},
		{"longest idle working connection", []*conn{
			{peer: "10.0.0.1", accepted: at(0), frames: 1, idleSince: at(9)},
			{peer: "10.0.0.1", accepted: at(1), frames: 9, idleSince: at(4)},
		}, false, 1},
		{"mid-frame never", []*conn{
			{peer: "10.0.0.1", accepted: at(0), active: true},
			{peer: "10.0.0.1", accepted: at(1), frames: 1, idleSince: at(2)},
		}, false, 1},
		{"all mid-frame: none", []*conn{
			{peer: "10.0.0.1", accepted: at(0), active: true},
			{peer: "10.0.0.2", accepted: at(1), active: true, frames: 2},
		}, true, -1},
		{"global limit: the busiest peer's, though newer", []*conn{
			{peer: "10.0.0.2", accepted: at(0)},
			{peer: "10.0.0.1", accepted: at(7)},
		}, true, 1},
		{"global limit: a silent one of a small peer before a working one of the busiest", []*conn{
			{peer: "10.0.0.1", accepted: at(0), frames: 1, idleSince: at(1)},
			{peer: "10.0.0.2", accepted: at(7)},
		}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pl func(string) int
			if tt.load {
				pl = func(p string) int { return load[p] }
			}
			got := pickVictim(slices.Values(tt.cands), pl)
			want := (*conn)(nil)
			if tt.want >= 0 {
				want = tt.cands[tt.want]
			}
			if got != want {
				t.Fatalf("victim %+v, want %+v", got, want)
			}
		})
	}
}

// Two peers under MaxConnections: the newcomer from the light peer closes
// one of the heavy peer's connections, not the light peer's own.
func TestServerGlobalLimitTakesFromBusiestPeer(t *testing.T) {
	other := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	ev := newEvents()
	s := &Server{Handler: echo, MaxConnections: 4, MaxConnectionsPerPeer: 4, ConnState: ev.hook, Logger: discard()}
	addr := startServer(t, s)
	light1, err := other.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2 on this system: %v", err)
	}
	defer light1.Close()
	waitServed(t, s, light1)
	heavy := flood(t, addr, 3)
	waitServed(t, s, light1, heavy[0], heavy[1], heavy[2])
	light2, err := other.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer light2.Close()
	// light1 is the oldest silent connection, but its peer holds one of
	// four: the heavy peer's oldest goes.
	waitServed(t, s, light1, light2, heavy[1], heavy[2])
	waitClosedByServer(t, heavy[0])
}

func TestConnStateString(t *testing.T) {
	for st, want := range map[ConnState]string{
		StateOpen: "open", StateClosed: "closed", StateRejected: "rejected", StateEvicted: "evicted",
		StateHandshakeFailed: "handshake_failed", StateFirstByteTimeout: "first_byte_timeout", 0: "unknown",
	} {
		if got := st.String(); got != want {
			t.Errorf("ConnState(%d).String() = %q, want %q", int(st), got, want)
		}
	}
}

// Connections that start a frame and stop (a start block and one byte)
// are not protected as a message being handled is: a real sender still
// gets in, and its next message is answered, while they keep coming.
func TestServerHalfFramesDoNotLockOut(t *testing.T) {
	ev := newEvents()
	s := &Server{Handler: HandlerFunc(echo), ConnState: ev.hook, Logger: discard()}
	addr := startServer(t, s)
	half := func(n int) {
		for _, c := range flood(t, addr, n) {
			if _, err := c.Write([]byte{StartBlock, 'M'}); err != nil {
				t.Fatal(err)
			}
		}
	}
	half(200)
	ev.waitCount(t, StateOpen, 200)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := NewReader(c, 0)
	if got := roundTrip(t, c, r, "MSH|first"); got != "ACK:MSH|first" {
		t.Fatalf("reply %q", got)
	}
	half(200)
	ev.waitCount(t, StateOpen, 401)
	if got := roundTrip(t, c, r, "MSH|second"); got != "ACK:MSH|second" {
		t.Fatalf("reply after the second flood %q", got)
	}
	if got := ev.count(StateRejected); got != 0 {
		t.Fatalf("%d connections refused; half-sent frames should have been evicted instead", got)
	}
}
