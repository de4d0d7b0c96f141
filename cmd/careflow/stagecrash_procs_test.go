package main

// This file holds the stage crash test's parts: a stage process that can
// be killed and restarted under the same instance id, the lab stand-in
// that records control ids, and reading topics to a settled end.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/topics"
)

// stageProc is one stage's process, restartable under the same instance
// id. Each start logs to a file of its own, so readiness is judged on the
// live copy.
type stageProc struct {
	t    *testing.T
	name string
	dir  string
	bin  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *os.File
	n    int
	logs []string
}

func (p *stageProc) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	f, err := os.Create(filepath.Join(p.dir, fmt.Sprintf("%s-%d.log", p.name, p.n)))
	if err != nil {
		p.t.Error(err)
		return
	}
	// The Kafka client's log shows what a stuck copy waits for.
	cmd := exec.Command(p.bin, append(slices.Clone(p.args), "--kafka-log-level", "info")...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Error(err)
		return
	}
	p.cmd, p.log = cmd, f
	p.logs = append(p.logs, f.Name())
}

// kill SIGKILLs the live copy: no shutdown, the open transaction stays open
// on the broker until the next copy's InitProducerID aborts it.
func (p *stageProc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.log.Close()
	p.cmd = nil
}

// current is the live copy's log file and start number.
func (p *stageProc) current() (string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.logs) == 0 {
		return "", 0
	}
	return p.logs[len(p.logs)-1], p.n
}

// ready reports whether the live copy has joined its group.
func (p *stageProc) ready() error {
	f, n := p.current()
	b, _ := os.ReadFile(f)
	if !bytes.Contains(b, []byte("partitions assigned")) {
		return fmt.Errorf("stage %s (start %d) has not joined its group", p.name, n)
	}
	return nil
}

// output is the topic whose growth shows the stage at work.
func (p *stageProc) output() string {
	switch p.name {
	case topics.StageValidate:
		return topics.Valid
	case topics.StageNormalise:
		return topics.Events
	case topics.StageRoute:
		return topics.Outbound("lab")
	}
	return topics.Outcomes
}

// waitWorking waits until the live copy has joined and its output topic
// grows: the stage is then mid-stream.
func (p *stageProc) waitWorking(admin *kadm.Client, stop <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	base := int64(-1)
	for {
		if p.ready() == nil {
			ends, err := admin.ListEndOffsets(context.Background(), p.output())
			if err == nil {
				var sum int64
				ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
				if base < 0 {
					base = sum
				} else if sum > base {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			_, n := p.current()
			return fmt.Errorf("stage %s (start %d) produced nothing for 30s: %v", p.name, n, p.ready())
		}
		select {
		case <-stop:
			return fmt.Errorf("stream ended first")
		case <-time.After(3 * time.Millisecond):
		}
	}
}

// tail is the end of the live copy's log.
func (p *stageProc) tail(n int) string {
	f, start := p.current()
	data, _ := os.ReadFile(f)
	return fmt.Sprintf("--- %s (start %d)\n%s\n", p.name, start, tail(data, n))
}

// diagnose names the known way a restarted copy stalls: its group's offsets
// are held by the dead copy's open transaction (KIP-447 require_stable), and
// only an InitProducerID with the same transactional id, or the transaction
// timeout, ends that transaction.
func (p *stageProc) diagnose() string {
	f, start := p.current()
	data, _ := os.ReadFile(f)
	unstable := bytes.Count(data, []byte("UNSTABLE_OFFSET_COMMIT"))
	if unstable == 0 {
		return ""
	}
	initialised := bytes.Contains(data, []byte("producer id initialization success"))
	return fmt.Sprintf("DIAGNOSIS: %s (start %d) retried OffsetFetch %d times on UNSTABLE_OFFSET_COMMIT (producer id initialised: %v): "+
		"the killed copy's transaction, holding its offsets, stays open until this copy fences it or the transaction times out\n",
		p.name, start, unstable, initialised)
}

// controlLab is a stand-in lab that ACKs AA and records every message it
// gets: outbound control id (MSH-10), order (ORC-2) and patient (PID-3).
type controlLab struct {
	mu   sync.Mutex
	msgs []labMessage
}

type labMessage struct{ control, order, patient string }

func (l *controlLab) serve(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		m, err := hl7v2.Parse(append([]byte(nil), req.Payload...))
		if err != nil {
			t.Errorf("lab got unparseable HL7: %v", err)
			return nil
		}
		l.mu.Lock()
		l.msgs = append(l.msgs, labMessage{control: m.Get("MSH-10"), order: m.Get("ORC-2.1"), patient: m.Get("PID-3.1")})
		l.mu.Unlock()
		return hl7v2.BuildACK(m.Header(), m.Delimiters(), hl7v2.AckAA, hl7v2.ACKOptions{ControlID: "LAB1", Now: time.Now()})
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (l *controlLab) snapshot() []labMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]labMessage(nil), l.msgs...)
}

// ordersByPatient is each patient's orders (ORC-2) in arrival order.
func (l *controlLab) ordersByPatient() map[string][]string {
	by := map[string][]string{}
	for _, m := range l.snapshot() {
		by[m.patient] = append(by[m.patient], m.order)
	}
	return by
}

func (l *controlLab) distinctOrders() map[string]bool {
	seen := map[string]bool{}
	for _, m := range l.snapshot() {
		seen[m.order] = true
	}
	return seen
}

// settledEnds returns the end offsets of ts once no transaction is open on
// them (last stable offset = high watermark on every partition).
func settledEnds(admin *kadm.Client, ts []string) (kadm.ListedOffsets, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hw, err := admin.ListEndOffsets(ctx, ts...)
	if err != nil {
		return nil, err
	}
	lso, err := admin.ListCommittedOffsets(ctx, ts...)
	if err != nil {
		return nil, err
	}
	var open []string
	hw.Each(func(o kadm.ListedOffset) {
		if s, ok := lso.Lookup(o.Topic, o.Partition); !ok || s.Offset != o.Offset {
			open = append(open, fmt.Sprintf("%s/%d", o.Topic, o.Partition))
		}
	})
	if len(open) > 0 {
		return nil, fmt.Errorf("transactions still open on %v", open)
	}
	return hw, nil
}

// readTopic reads topic from the start to ends with the given isolation
// and returns its data records (control records, kept to see the end of a
// partition whose last entry is a commit marker, are dropped).
func readTopic(t *testing.T, seeds []string, topic string, ends kadm.ListedOffsets, iso kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == topic && o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: partitions %v not read to their end", topic, want)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("read %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// repeated lists the keys counted more than once, with their counts.
func repeated(counts map[string]int) []string {
	var out []string
	for k, n := range counts {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s×%d", k, n))
		}
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// stageCheckFor polls fn until it returns nil or total passes, then fails
// with the stage logs.
func stageCheckFor(t *testing.T, total time.Duration, fn func() error, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v\n%s", total, err, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
