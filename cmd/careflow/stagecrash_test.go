package main

// This file is the crash test of a scaled-out engine: every stage in its own
// process against a shared (in-test) Kafka and schema registry, each stage
// SIGKILLed in turn while a stream flows. It checks the two promises of
// docs/exactly-once.md at every stage boundary: exactly once between stages,
// at least once (bounded) to the lab.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"careflow/avro/registry"
	"careflow/connectors/hl7v2"
	"careflow/connectors/mllp"
	"careflow/topics"
)

const stageCrashYAML = `
kafka:
  partitions: 3
  transaction_records: %[5]d
admin: {listen: %[1]s}
http: {listen: %[2]s}
inbound:
  - name: ehr
    transport: mllp
    listen: %[3]s
destinations:
  - name: lab
    transport: mllp
    address: %[4]s
    hl7_version: "2.5.1"
    ack_timeout: 5s
    retry: {initial: 50ms, max: 1s, multiplier: 2}
    breaker: {failures: 5, open_for: 1s}
routes:
  - name: orders
    destination: lab
    when: 'event.message_type == "ORM"'
`

// Run every stage as its own process on a shared broker and registry and
// SIGKILL validate, normalise, route and deliver in turn while a stream
// flows, restarting each at once with the same --instance-id (so the new
// copy fences the dead one). Every acknowledged order reaches the lab, the
// only duplicates there are deliver's resends (same control id, at most a
// transaction's records per deliver kill), each patient's orders keep their
// order, and careflow.valid, careflow.events and careflow.out.lab hold every
// message exactly once.
func TestStageCrashesLoseNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("stage crash test builds and kills the binary")
	}
	const (
		total     = 240
		patients  = 6
		txRecords = 20
		rounds    = 2
	)
	victims := []string{topics.StageValidate, topics.StageNormalise, topics.StageRoute, topics.StageDeliver}
	kills := rounds * len(victims)
	built := time.Now()
	bin := buildBinary(t)
	t.Logf("binary built in %.1fs", time.Since(built).Seconds())
	dir := t.TempDir()

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the stage processes, cleaned up first
	store, err := registry.Open(filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(store)
	t.Cleanup(reg.Close)
	adm, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	admin := kadm.NewClient(adm)

	ehr, labAddr := freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(dir, "careflow.yaml")
	yaml := fmt.Sprintf(stageCrashYAML, freeAddr(t), freeAddr(t), ehr, labAddr, txRecords)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	lab := &controlLab{}
	lab.serve(t, labAddr)

	procs := map[string]*stageProc{}
	for _, name := range topics.Stages {
		procs[name] = &stageProc{
			t: t, name: name, dir: dir,
			args: []string{"stage", name, "--config", cfgPath, "--brokers", strings.Join(cluster.ListenAddrs(), ","),
				"--schema-registry", reg.URL, "--instance-id", "stagecrash-" + name},
			bin: bin,
		}
	}
	logs := func() string {
		var diag, b strings.Builder
		for _, name := range topics.Stages {
			diag.WriteString(procs[name].diagnose())
			b.WriteString(procs[name].tail(2000))
		}
		return diag.String() + b.String()
	}
	// Ingest first: it creates the topics the others would race to create,
	// and it must listen before anything is sent.
	procs[topics.StageIngest].start()
	t.Cleanup(func() {
		for _, name := range topics.Stages {
			procs[name].kill()
		}
	})
	stageCheckFor(t, 30*time.Second, func() error {
		c, err := net.DialTimeout("tcp", ehr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}, logs)
	for _, name := range victims {
		procs[name].start()
	}
	for _, name := range victims {
		stageCheckFor(t, 30*time.Second, procs[name].ready, logs)
	}

	// Kills go round the stages, each at a random instant just after the
	// stage was seen producing output: a kill then lands mid-stream and,
	// often, mid-transaction. The sender does not run ahead of the kills
	// (it waits at each kill's mark for the previous one), so there is
	// always traffic when a kill lands.
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	mark := func(k int) int { return (k + 1) * total / (kills + 1) }
	var sent atomic.Int64
	begin := time.Now()
	landed := make(chan struct{}, kills)
	stop := make(chan struct{})
	killErr := make(chan error, 1)
	var killers sync.WaitGroup
	killers.Add(1)
	go func() {
		defer killers.Done()
		for k := range kills {
			p := procs[victims[k%len(victims)]]
			for sent.Load() < int64(mark(k)) {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			if err := p.waitWorking(admin, stop); err != nil {
				killErr <- fmt.Errorf("kill %d (%s): %w", k+1, p.name, err)
				return
			}
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
			p.kill()
			t.Logf("%5.1fs kill %d: %s, %d sent", time.Since(begin).Seconds(), k+1, p.name, sent.Load())
			p.start()
			landed <- struct{}{}
		}
	}()
	defer func() { close(stop); killers.Wait() }()

	// The sender behaves as a real EHR does: a message is resent (same
	// control id) until it is acknowledged.
	c := &mllp.Client{Addr: ehr, ACKTimeout: 10 * time.Second, DialTimeout: time.Second}
	defer c.Close()
	didKill := 0
	for i := range total {
		for didKill < kills && i >= mark(didKill+1) {
			select {
			case <-landed:
				didKill++
			case err := <-killErr:
				t.Fatalf("%v\n%s", err, logs())
			case <-time.After(30 * time.Second):
				t.Fatalf("kill %d did not land within 30s\n%s", didKill+1, logs())
			}
		}
		msg := crashOrder(i, patients)
		deadline := time.Now().Add(30 * time.Second)
		for {
			reply, err := c.Send(context.Background(), msg)
			if err == nil {
				if ack, perr := hl7v2.ParseACK(reply); perr == nil && ack.Code == hl7v2.AckAA {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %d never acknowledged: %v\n%s", i, err, logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
		sent.Add(1)
	}
	for didKill < kills {
		select {
		case <-landed:
			didKill++
		case err := <-killErr:
			t.Fatalf("%v\n%s", err, logs())
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d kills landed\n%s", didKill, kills, logs())
		}
	}

	t.Logf("%5.1fs all %d sent and acknowledged", time.Since(begin).Seconds(), total)
	stageCheckFor(t, 60*time.Second, func() error {
		if n := len(lab.distinctOrders()); n < total {
			return fmt.Errorf("%d of %d acknowledged orders reached the lab", n, total)
		}
		return nil
	}, logs)

	t.Logf("%5.1fs all %d at the lab", time.Since(begin).Seconds(), total)
	// Between stages: exactly once. Wait until no transaction is open on
	// the stage topics, then read them to their end as a read_committed
	// consumer would.
	between := []string{topics.Valid, topics.Events, topics.Outbound("lab")}
	var ends kadm.ListedOffsets
	stageCheckFor(t, 30*time.Second, func() error {
		var err error
		ends, err = settledEnds(admin, between)
		return err
	}, logs)
	t.Logf("%5.1fs no transaction open between stages", time.Since(begin).Seconds())
	for _, topic := range between {
		committed := readTopic(t, cluster.ListenAddrs(), topic, ends, kgo.ReadCommitted())
		all := readTopic(t, cluster.ListenAddrs(), topic, ends, kgo.ReadUncommitted())
		byID, byKey := map[string]int{}, map[string]int{}
		for _, r := range committed {
			byID[header(r, topics.HeaderMessageID)]++
			byKey[header(r, topics.HeaderIdempotencyKey)]++
		}
		t.Logf("%5.1fs %s: %d committed records, %d aborted (written by a killed transaction)", time.Since(begin).Seconds(), topic, len(committed), len(all)-len(committed))
		if d := repeated(byID); len(d) > 0 {
			t.Errorf("%s holds %d message ids more than once, e.g. %v", topic, len(d), d[:min(len(d), 3)])
		}
		if d := repeated(byKey); len(d) > 0 {
			t.Errorf("%s holds %d source messages (idempotency keys) more than once, e.g. %v", topic, len(d), d[:min(len(d), 3)])
		}
		if len(byKey) != total {
			t.Errorf("%s holds %d distinct messages, want %d", topic, len(byKey), total)
		}
	}

	// To the lab: at least once, duplicates bounded and recognisable.
	got := lab.snapshot()
	controls := map[string]string{} // order → the control id it came with
	distinct := map[string]bool{}
	for _, m := range got {
		distinct[m.control] = true
		if c, ok := controls[m.order]; ok && c != m.control {
			t.Errorf("order %s reached the lab under control ids %s and %s: a duplicate the receiver cannot drop", m.order, c, m.control)
		}
		controls[m.order] = m.control
	}
	dups := len(got) - len(distinct)
	deliverKills := rounds
	t.Logf("%d kills: %d messages at the lab, %d distinct control ids, %d duplicates", didKill, len(got), len(distinct), dups)
	if len(distinct) != total {
		t.Errorf("lab saw %d distinct control ids for %d orders", len(distinct), total)
	}
	if dups > deliverKills*txRecords {
		t.Errorf("%d duplicates after %d deliver kills, more than the in-flight bound %d", dups, deliverKills, deliverKills*txRecords)
	}
	last, seen := map[string]int{}, map[string]bool{}
	for _, m := range got {
		if seen[m.control] {
			continue // a resend; order is judged on first arrivals
		}
		seen[m.control] = true
		var n int
		fmt.Sscanf(m.order, "ORD%d", &n)
		if prev, ok := last[m.patient]; ok && n < prev {
			t.Errorf("patient %s: order %s arrived after ORD%04d", m.patient, m.order, prev)
		}
		last[m.patient] = n
	}
}

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
	cmd := exec.Command(p.bin, p.args...)
	// The runner's franz-go log shows what a stuck copy waits for.
	cmd.Env = append(os.Environ(), "CAREFLOW_KGO_DEBUG=1")
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
