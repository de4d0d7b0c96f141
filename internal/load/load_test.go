package load

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
)

// standIn is an MLLP receiver that records every control id it gets and
// answers with the code answer picks (nil reply: no ACK at all).
type standIn struct {
	mu  sync.Mutex
	ids map[string]int
}

func startStandIn(t *testing.T, answer func(ctl string) (hl7v2.AckCode, time.Duration, bool)) (*standIn, string) {
	t.Helper()
	s := &standIn{ids: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		m, err := hl7v2.Parse(append([]byte(nil), req.Payload...))
		if err != nil {
			t.Errorf("stand-in got unparseable HL7: %v", err)
			return nil
		}
		ctl := m.Get("MSH-10")
		s.mu.Lock()
		s.ids[ctl]++
		s.mu.Unlock()
		code, delay, reply := answer(ctl)
		if delay > 0 {
			time.Sleep(delay) // a slow receiver, simulated
		}
		if !reply {
			return nil
		}
		return hl7v2.BuildACK(m.Header(), m.Delimiters(), code, hl7v2.ACKOptions{ControlID: "A" + ctl, Now: time.Now()})
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, ln.Addr().String()
}

func (s *standIn) received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.ids))
	for k, v := range s.ids {
		out[k] = v
	}
	return out
}

func corpus(t *testing.T) [][]byte {
	t.Helper()
	msgs, err := LoadCorpus("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestRunCountsExactly(t *testing.T) {
	// Control ids end in the sequence number: every 10th is AE, every 25th
	// AR, the rest AA.
	answer := func(ctl string) (hl7v2.AckCode, time.Duration, bool) {
		n := seqOf(t, ctl)
		switch {
		case n%25 == 0:
			return hl7v2.AckAR, 0, true
		case n%10 == 0:
			return hl7v2.AckAE, 0, true
		}
		return hl7v2.AckAA, 0, true
	}
	tests := []struct {
		name  string
		cfg   Config
		count int
	}{
		{"count, open loop, 4 connections", Config{Rate: 5000, Count: 300, Connections: 4}, 300},
		{"count, closed loop, 1 connection", Config{Count: 137}, 137},
		{"duration, open loop", Config{Rate: 1000, Duration: 250 * time.Millisecond, Connections: 2}, 250},
		{"count reached before duration", Config{Rate: 2000, Count: 50, Duration: time.Minute, Connections: 3}, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, addr := startStandIn(t, answer)
			cfg := tc.cfg
			cfg.Addr, cfg.Corpus, cfg.ControlPrefix = addr, corpus(t), "T-"
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			wantAR := (tc.count + 24) / 25
			wantAE := (tc.count+9)/10 - (tc.count+49)/50 // multiples of 10 that are not of 25... of 50
			if res.Sent != tc.count || res.Acked() != tc.count || res.AR != wantAR || res.AE != wantAE ||
				res.AA != tc.count-wantAR-wantAE || res.Timeouts != 0 || res.Errors != 0 {
				t.Fatalf("result %+v, want %d sent, %d AE, %d AR", res, tc.count, wantAE, wantAR)
			}
			got := s.received()
			if len(got) != tc.count {
				t.Fatalf("stand-in received %d distinct control ids, want %d", len(got), tc.count)
			}
			for ctl, n := range got {
				if n != 1 {
					t.Fatalf("control id %s received %d times", ctl, n)
				}
			}
			if res.Rate <= 0 || res.P50 <= 0 || res.P50 > res.P95 || res.P95 > res.P99 || res.P99 > res.Max {
				t.Fatalf("rate or quantiles implausible: %+v", res)
			}
		})
	}
}

func seqOf(t *testing.T, ctl string) int {
	i := strings.LastIndexByte(ctl, '-')
	n := 0
	for _, c := range ctl[i+1:] {
		if c < '0' || c > '9' {
			t.Errorf("control id %q does not end in a sequence number", ctl)
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// A receiver that takes 20 ms per message, offered 200 msgs/s on one
// connection, falls behind by 15 ms a message: the last of 40 waits about
// 600 ms for its turn. A generator that timed from the actual send would
// report about 20 ms.
func TestLatencyIncludesQueueing(t *testing.T) {
	_, addr := startStandIn(t, func(string) (hl7v2.AckCode, time.Duration, bool) {
		return hl7v2.AckAA, 20 * time.Millisecond, true
	})
	res, err := Run(context.Background(), Config{Addr: addr, Rate: 200, Count: 40, Corpus: corpus(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.AA != 40 {
		t.Fatalf("AA %d, want 40", res.AA)
	}
	if res.Max < 500*time.Millisecond {
		t.Fatalf("max latency %v: the queueing behind the slow receiver is hidden", res.Max)
	}
	if res.Rate > 60 {
		t.Fatalf("achieved rate %.0f msgs/s above what a 20 ms receiver allows", res.Rate)
	}
}

func TestTimeoutsCounted(t *testing.T) {
	_, addr := startStandIn(t, func(ctl string) (hl7v2.AckCode, time.Duration, bool) {
		return hl7v2.AckAA, 0, !strings.HasSuffix(ctl, "-3")
	})
	res, err := Run(context.Background(), Config{Addr: addr, Count: 6, ACKTimeout: 200 * time.Millisecond, Corpus: corpus(t), ControlPrefix: "X-"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 6 || res.AA != 5 || res.Timeouts != 1 {
		t.Fatalf("result %+v, want 6 sent, 5 AA, 1 timeout", res)
	}
}

func TestConfigMistakes(t *testing.T) {
	for _, cfg := range []Config{
		{Count: 1, Corpus: [][]byte{[]byte("MSH|")}},
		{Addr: "127.0.0.1:1", Corpus: [][]byte{[]byte("MSH|")}},
		{Addr: "127.0.0.1:1", Count: 1},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) = nil error", cfg)
		}
	}
}

func TestQuantile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		vals []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(hundred...), 0.5, 50 * time.Millisecond},
		{ms(hundred...), 0.95, 95 * time.Millisecond},
		{ms(hundred...), 0.99, 99 * time.Millisecond},
		{ms(hundred...), 1, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := Quantile(tc.vals, tc.q); got != tc.want {
			t.Errorf("Quantile(%d values, %v) = %v, want %v", len(tc.vals), tc.q, got, tc.want)
		}
	}
}

func TestWithControlID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|OLD|P|2.5.1\rPID|1\r", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|NEW|P|2.5.1\rPID|1\r"},
		{"MSH|^~\\&|A|B|C|D|20240101||ADT^A01||P|2.5.1\r", "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|NEW|P|2.5.1\r"},
		{"MSH#^~\\&#A#B#C#D#1##ADT^A01#OLD\r", "MSH#^~\\&#A#B#C#D#1##ADT^A01#NEW\r"},
		{"MSH|^~\\&|A\rPID|1|2|3|4|5|6|7|8|9|10\r", "MSH|^~\\&|A\rPID|1|2|3|4|5|6|7|8|9|10\r"},
		{"PID|1\r", "PID|1\r"},
	}
	for _, tc := range tests {
		if got := string(WithControlID([]byte(tc.in), "NEW")); got != tc.want {
			t.Errorf("WithControlID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoadCorpus(t *testing.T) {
	msgs := corpus(t)
	if len(msgs) != 2 {
		t.Fatalf("%d messages from testdata, want 2 (junk.hl7 skipped)", len(msgs))
	}
	for _, m := range msgs {
		if _, err := hl7v2.Parse(m); err != nil {
			t.Errorf("corpus message does not parse: %v", err)
		}
	}
	if _, err := LoadCorpus(t.TempDir()); err == nil {
		t.Error("empty directory: want an error")
	}

	// A batch is unwrapped as careflow send unwraps it; text before the
	// first MSH is an error naming the file, not a message of its own.
	dir := t.TempDir()
	batch := "FHS|^~\\&\nBHS|^~\\&\nMSH|^~\\&|A\nPID|1\n\nMSH|^~\\&|B\r\nPID|2\r\nBTS|2\nFTS|1\n"
	if err := os.WriteFile(filepath.Join(dir, "batch.hl7"), []byte(batch), 0o600); err != nil {
		t.Fatal(err)
	}
	two, err := LoadCorpus(dir)
	if err != nil || len(two) != 2 || string(two[0]) != "MSH|^~\\&|A\rPID|1\r" || string(two[1]) != "MSH|^~\\&|B\rPID|2\r" {
		t.Errorf("LoadCorpus(batch) = %q, %v", two, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "leading.hl7"), []byte("junk\nMSH|^~\\&|A\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCorpus(dir); err == nil || !strings.Contains(err.Error(), "leading.hl7") {
		t.Errorf("LoadCorpus with text before MSH: %v, want an error naming leading.hl7", err)
	}
}
