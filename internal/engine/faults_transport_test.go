package engine_test

// The transport rows of the fault matrix: what a broken, slow, greedy or
// silent MLLP sender does to an interface, and that the next sender is
// still served.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/testpki"
	"github.com/careflow-health/careflow/topics"
)

// faultFrame wraps msg in MLLP framing.
func faultFrame(msg []byte) []byte {
	return append(append([]byte{mllp.StartBlock}, msg...), mllp.EndBlock, mllp.CarriageReturn)
}

// faultDial opens a plain TCP connection to addr.
func faultDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// faultClosed waits up to within for the server to close nc and returns
// how long that took; it fails if nc is still open or sends a reply.
func faultClosed(t *testing.T, nc net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(within))
	n, err := nc.Read(make([]byte, 1024))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open after %v", within)
	case n > 0:
		t.Fatalf("got a %d-byte reply, want the connection closed with nothing stored", n)
	case err == nil:
		t.Fatal("read returned nothing and no error")
	}
	return time.Since(start)
}

// faultACKs reads n reply frames from nc and parses them.
func faultACKs(t *testing.T, nc net.Conn, n int) []hl7v2.ACK {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := mllp.NewReader(nc, 0)
	var out []hl7v2.ACK
	for range n {
		reply, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("reply %d: %v", len(out)+1, err)
		}
		ack, err := hl7v2.ParseACK(reply)
		if err != nil {
			t.Fatalf("reply %d is not an ACK: %v", len(out)+1, err)
		}
		out = append(out, ack)
	}
	return out
}

// faultEvicted reads careflow_ingest_connections_refused_total for iface
// and reason evicted.
func faultEvicted(eng *engine.Engine, iface string) (int, error) {
	m, err := faultMetrics(eng)
	if err != nil {
		return 0, err
	}
	re := regexp.MustCompile(`careflow_ingest_connections_refused_total\{interface="` + iface + `",reason="evicted"\} (\d+)`)
	sm := re.FindStringSubmatch(m)
	if sm == nil {
		return 0, nil
	}
	return strconv.Atoi(sm[1])
}

// Each row is a transport fault on an interface, followed by a good
// message on a fresh connection that must get AA and be delivered. A fault
// stores exactly what the row says on careflow.raw (counted by end
// offsets, so nothing extra hides) and dead-letters what it says on
// careflow.dlq.ingest.
func TestFaultMalformedTransport(t *testing.T) {
	t.Parallel() // its engine is its own; the timing-sensitive destination rows run alone
	fe := newFaultEstate(t)
	fe.ReadTimeout, fe.MaxMessageSize = "500ms", "64KiB"
	dir := t.TempDir()
	ca := testpki.NewCA(t, "careflow faults CA")
	srvCert, srvKey := testpki.WritePEM(t, dir, "careflow", ca.Issue(t, testpki.Leaf{CommonName: "careflow"}))
	client := ca.Issue(t, testpki.Leaf{CommonName: "ehr.hospital"})
	fe.Inbound = fmt.Sprintf(`  - name: secure
    transport: mllp
    listen: %s
    tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
    accept:
      message_types: ["ORM^O01"]
`, fe.Secure, srvCert, srvKey, ca.WriteCA(t, dir, "ca"))
	lab := startFaultLab(t, fe.Lab, labAlwaysAA)
	eng := startEngine(t, fe.config(t), t.TempDir())
	tail := newFaultTail(t, eng)
	tlsConfig := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}}

	n := 0
	next := func() string { n++; return fmt.Sprintf("TR%03d", n) }
	var sent []faultSent // every message stored, fault rows' and good ones
	rows := []struct {
		name   string
		secure bool // the row is about the TLS interface
		// fault does the harm and returns the control ids of the
		// messages it expects stored.
		fault func(t *testing.T) []string
		dlq   int // dead letters it adds on careflow.dlq.ingest
		// after checks what the fault did once the good message is through.
		after func(t *testing.T)
	}{
		{
			name: "frame with no end block: closed after read_timeout, nothing stored",
			fault: func(t *testing.T) []string {
				nc := faultDial(t, fe.EHR)
				defer nc.Close()
				if _, err := nc.Write(append([]byte{mllp.StartBlock}, orm("TR", next(), "PL-NOEB")...)); err != nil {
					t.Fatal(err)
				}
				if took := faultClosed(t, nc, 10*time.Second); took < 400*time.Millisecond {
					t.Fatalf("closed after %v, before read_timeout (500ms)", took)
				}
				return nil
			},
		},
		{
			name: "frame split into many small writes",
			fault: func(t *testing.T) []string {
				nc := faultDial(t, fe.EHR)
				defer nc.Close()
				id := next()
				frame := faultFrame(orm("TR", id, "PL-"+id))
				for i := 0; i < len(frame); i += 5 {
					if _, err := nc.Write(frame[i:min(i+5, len(frame))]); err != nil {
						t.Fatal(err)
					}
				}
				if ack := faultACKs(t, nc, 1)[0]; ack.Code != hl7v2.AckAA || ack.ControlID != id {
					t.Fatalf("split frame answered %s for %q, want AA for %s", ack.Code, ack.ControlID, id)
				}
				return []string{id}
			},
		},
		{
			name: "two frames pipelined in one write: both answered in order, both stored",
			fault: func(t *testing.T) []string {
				nc := faultDial(t, fe.EHR)
				defer nc.Close()
				a, b := next(), next()
				if _, err := nc.Write(append(faultFrame(orm("TR", a, "PL-"+a)), faultFrame(orm("TR", b, "PL-"+b))...)); err != nil {
					t.Fatal(err)
				}
				acks := faultACKs(t, nc, 2)
				if acks[0].Code != hl7v2.AckAA || acks[0].ControlID != a || acks[1].Code != hl7v2.AckAA || acks[1].ControlID != b {
					t.Fatalf("pipelined frames answered %s/%s then %s/%s, want AA/%s then AA/%s",
						acks[0].Code, acks[0].ControlID, acks[1].Code, acks[1].ControlID, a, b)
				}
				return []string{a, b}
			},
		},
		{
			name: "slow-loris, one byte every 200ms: closed at read_timeout, nothing stored",
			fault: func(t *testing.T) []string {
				nc := faultDial(t, fe.EHR)
				defer nc.Close()
				msg := append([]byte{mllp.StartBlock}, orm("TR", next(), "PL-LORIS")...)
				stop := make(chan struct{})
				var wrote int
				var wg sync.WaitGroup
				wg.Go(func() {
					tick := time.NewTicker(200 * time.Millisecond) // the sender's pace is the fault
					defer tick.Stop()
					for _, c := range msg {
						if _, err := nc.Write([]byte{c}); err != nil {
							return
						}
						wrote++
						select {
						case <-stop:
							return
						case <-tick.C:
						}
					}
				})
				took := faultClosed(t, nc, 10*time.Second)
				close(stop)
				wg.Wait()
				if took < 400*time.Millisecond || took > 3*time.Second || wrote >= len(msg) {
					t.Fatalf("closed after %v with %d of %d bytes written; want closed at read_timeout (500ms), long before the frame ends",
						took, wrote, len(msg))
				}
				return nil
			},
		},
		{
			name: "frame over max_message_size: AR, dead-lettered",
			fault: func(t *testing.T) []string {
				c := &mllp.Client{Addr: fe.EHR}
				defer c.Close()
				id := next()
				big := append(orm("TR", id, "PL-BIG"), []byte("NTE|1||"+strings.Repeat("x", 100<<10)+"\r")...)
				if ack := send(t, c, big); ack.Code != hl7v2.AckAR || ack.ControlID != id {
					t.Fatalf("oversize frame answered %s for %q, want AR for %s", ack.Code, ack.ControlID, id)
				}
				return nil
			},
			dlq: 1,
			after: func(t *testing.T) {
				await.For(t, 10*time.Second, 20*time.Millisecond, func() error {
					tail.poll()
					for _, d := range tail.deadLetters(topics.StageIngest) {
						if d.ErrorCode == "ingest.too_large" && d.header(topics.HeaderDLQCode) == d.ErrorCode &&
							d.Interface == "ehr" && strings.HasPrefix(string(d.OriginalValue), "MSH|") {
							return nil
						}
					}
					return fmt.Errorf("no ingest.too_large dead letter yet")
				})
			},
		},
		{
			name: "200 idle connections from one address, then a sender",
			fault: func(t *testing.T) []string {
				for range 200 {
					nc := faultDial(t, fe.EHR)
					t.Cleanup(func() { nc.Close() }) // held open until the sender is served
				}
				return nil
			},
			after: func(t *testing.T) {
				// The sender got in because silent connections were closed
				// to make room (max_connections_per_peer 20).
				await.For(t, 10*time.Second, 20*time.Millisecond, func() error {
					if k, err := faultEvicted(eng, "ehr"); err != nil || k < 181 {
						return fmt.Errorf("%d connections evicted (%v), want at least 181", k, err)
					}
					return nil
				})
			},
		},
		{
			name: "100 connections that never start the TLS handshake, then a TLS sender", secure: true,
			fault: func(t *testing.T) []string {
				for range 100 {
					nc := faultDial(t, fe.Secure)
					t.Cleanup(func() { nc.Close() })
				}
				return nil
			},
			after: func(t *testing.T) {
				// Made room by eviction, not by handshake_timeout (10s).
				await.For(t, 10*time.Second, 20*time.Millisecond, func() error {
					if k, err := faultEvicted(eng, "secure"); err != nil || k < 81 {
						return fmt.Errorf("%d connections evicted (%v), want at least 81", k, err)
					}
					return nil
				})
			},
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			raw0, dlq0 := faultRecords(t, eng, topics.Raw), faultRecords(t, eng, topics.DeadLetter(topics.StageIngest))
			stored := row.fault(t)

			c := &mllp.Client{Addr: fe.EHR}
			if row.secure {
				c = &mllp.Client{Addr: fe.Secure, TLSConfig: tlsConfig}
			}
			defer c.Close()
			good := next()
			faultSend(t, c, orm("TR", good, "PL-"+good), "AA")
			stored = append(stored, good)
			if raw, dlq := faultRecords(t, eng, topics.Raw)-raw0, faultRecords(t, eng, topics.DeadLetter(topics.StageIngest))-dlq0; raw != int64(len(stored)) || dlq != int64(row.dlq) {
				t.Fatalf("careflow.raw gained %d records and careflow.dlq.ingest %d; want %d (%v) and %d", raw, dlq, len(stored), stored, row.dlq)
			}
			for _, id := range stored {
				sent = append(sent, faultSent{key: ehrKey(id), dests: []string{"lab"}})
			}
			await.For(t, 20*time.Second, 20*time.Millisecond, func() error {
				for _, m := range lab.delivered() {
					if m.Get("ORC-2.1") == "PL-"+good {
						return nil
					}
				}
				return fmt.Errorf("good message %s not at the lab", good)
			})
			if row.after != nil {
				row.after(t)
			}
		})
	}
	if t.Failed() {
		return
	}
	// Every stored message is the one its sender was answered for, and
	// every one of them reached the lab once, in the order answered.
	tail.settle(sent, 20*time.Second)
	await.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := len(tail.recs[topics.Raw]); n < len(sent) {
			tail.poll()
			return fmt.Errorf("read %d of %d raw records", n, len(sent))
		}
		return nil
	})
	var raws, want, got []string
	for _, r := range tail.recs[topics.Raw] {
		var m avro.RawMessage
		if err := eng.Serde().Decode(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		raws = append(raws, m.ControlID)
	}
	for _, s := range sent {
		want = append(want, strings.TrimPrefix(s.key, "EHR|HOSP|"))
	}
	for _, m := range lab.delivered() {
		got = append(got, strings.TrimPrefix(m.Get("ORC-2.1"), "PL-"))
	}
	if strings.Join(raws, ",") != strings.Join(want, ",") || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("stored %v and delivered %v, want %v", raws, got, want)
	}
}
