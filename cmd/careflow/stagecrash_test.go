package main

// This file is the crash test of a scaled-out engine: every stage in its own
// process against a shared (in-test) Kafka and schema registry, each stage
// SIGKILLed in turn while a stream flows. It checks the two promises of
// docs/exactly-once.md at every stage boundary: exactly once between stages,
// at least once (bounded) to the lab.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/topics"
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

	ehr, labAddr := freeport.For(t), freeport.For(t)
	cfgPath := filepath.Join(dir, "careflow.yaml")
	yaml := fmt.Sprintf(stageCrashYAML, freeport.For(t), freeport.For(t), ehr, labAddr, txRecords)
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

	// The order lifecycle: route, killed and restarted with the others,
	// restored its state and wrote each order's placed, sent and accepted
	// (the lab's AA, through deliver's outcome) exactly once.
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	transitions := func() (map[string]int, error) {
		ends, err := settledEnds(admin, []string{topics.Orders})
		if err != nil {
			return nil, err
		}
		n := map[string]int{}
		for _, r := range readTopic(t, cluster.ListenAddrs(), topics.Orders, ends, kgo.ReadCommitted()) {
			var x avro.OrderTransition
			if err := serde.Decode(r.Value, &x); err != nil {
				t.Fatalf("careflow.orders: %v", err)
			}
			n[x.PlacerOrder+"/"+x.State]++
		}
		return n, nil
	}
	var byState map[string]int
	stageCheckFor(t, 60*time.Second, func() error {
		var err error
		if byState, err = transitions(); err != nil {
			return err
		}
		if len(byState) < 3*total {
			return fmt.Errorf("%d distinct order transitions, want %d (placed, sent, accepted for %d orders)", len(byState), 3*total, total)
		}
		return nil
	}, logs)
	for k, n := range byState {
		if n != 1 {
			t.Errorf("order transition %s written %d times, want once", k, n)
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
