package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/freeport"
)

// buildBinary compiles careflow once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "careflow")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const crashYAML = `
kafka:
  listen: %[1]s
  partitions: 3
  transaction_records: %[6]d
admin: {listen: %[2]s}
http: {listen: %[3]s}
inbound:
  - name: ehr
    transport: mllp
    listen: %[4]s
destinations:
  - name: lab
    transport: mllp
    address: %[5]s
    hl7_version: "2.5.1"
    ack_timeout: 5s
    retry: {initial: 50ms, max: 1s, multiplier: 2}
    breaker: {failures: 5, open_for: 1s}
routes:
  - name: orders
    destination: lab
    when: 'event.message_type == "ORM"'
`

// SIGKILL the engine (and with it the embedded broker) in the middle of a
// stream, several times, restarting it each time. Every message the engine
// acknowledged must reach the lab; duplicates at the lab are counted and
// bounded by the in-flight transactions; each patient's orders keep their
// order.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the binary")
	}
	const (
		total     = 400
		kills     = 6
		txRecords = 20
		patients  = 6
	)
	bin := buildBinary(t)
	dir := t.TempDir()
	ehr, labAddr := freeport.For(t), freeport.For(t)
	cfgPath := filepath.Join(dir, "careflow.yaml")
	yaml := fmt.Sprintf(crashYAML, freeport.For(t), freeport.For(t), freeport.For(t), ehr, labAddr, txRecords)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	lab := &controlLab{}
	lab.serve(t, labAddr)

	var (
		procMu sync.Mutex
		proc   *exec.Cmd
	)
	logf, err := os.Create(filepath.Join(dir, "engine.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	start := func() {
		procMu.Lock()
		defer procMu.Unlock()
		proc = exec.Command(bin, "run", "--config", cfgPath, "--data", filepath.Join(dir, "data"), "--instance-id", "crash")
		proc.Stdout, proc.Stderr = logf, logf
		if err := proc.Start(); err != nil {
			t.Fatal(err)
		}
	}
	kill := func() {
		procMu.Lock()
		defer procMu.Unlock()
		_ = proc.Process.Kill() // SIGKILL: no clean shutdown, the broker dies mid-transaction
		_ = proc.Wait()
	}
	start()
	defer func() { kill() }()

	// Kills are spread over the stream but land at arbitrary instants
	// relative to it (a random delay after a progress mark), so they hit
	// mid-send, mid-produce and mid-transaction.
	var sent atomic.Int64
	var didKill int
	killed := make(chan struct{})
	stopKilling := make(chan struct{})
	go func() {
		defer close(killed)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		for k := 1; k <= kills; k++ {
			for sent.Load() < int64(k*total/(kills+1)) {
				select {
				case <-stopKilling:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
			kill()
			start()
			didKill++
		}
	}()

	// The sender behaves as a real EHR does: a message is resent (same
	// control id) until it is acknowledged.
	c := &mllp.Client{Addr: ehr, ACKTimeout: 10 * time.Second, DialTimeout: time.Second}
	defer c.Close()
	for i := range total {
		msg := crashOrder(i, patients)
		deadline := time.Now().Add(90 * time.Second)
		for {
			reply, err := c.Send(context.Background(), msg)
			if err == nil {
				if ack, perr := hl7v2.ParseACK(reply); perr == nil && ack.Code == hl7v2.AckAA {
					break
				}
			}
			if time.Now().After(deadline) {
				logs, _ := os.ReadFile(logf.Name())
				t.Fatalf("message %d never acknowledged: %v\nengine log tail:\n%s", i, err, tail(logs, 3000))
			}
			time.Sleep(50 * time.Millisecond)
		}
		sent.Add(1)
	}
	close(stopKilling)
	<-killed
	if didKill < kills {
		t.Fatalf("only %d kills landed while sending; the test proves little", didKill)
	}

	deadline := time.Now().Add(120 * time.Second)
	for {
		got := map[string]int{}
		for _, m := range lab.snapshot() {
			got[m.order]++
		}
		missing := 0
		for i := range total {
			if got[fmt.Sprintf("ORD%04d", i)] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(logf.Name())
			t.Fatalf("%d of %d acknowledged orders never reached the lab\nengine log tail:\n%s", missing, total, tail(logs, 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	received := lab.snapshot()
	dups := len(received) - total
	t.Logf("%d kills: %d orders delivered, %d duplicates at the lab", didKill, len(received), dups)
	// At-least-once to a third party: a kill can resend what was sent but
	// not yet committed, at most one transaction's records per kill.
	if dups > kills*txRecords {
		t.Fatalf("%d duplicates after %d kills, more than the in-flight bound %d", dups, kills, kills*txRecords)
	}
	for p, seq := range lab.ordersByPatient() {
		last := -1
		seen := map[string]bool{}
		for _, o := range seq {
			if seen[o] {
				continue // a duplicate resend; order is judged on first arrivals
			}
			seen[o] = true
			var n int
			fmt.Sscanf(o, "ORD%d", &n)
			if n < last {
				t.Fatalf("patient %s: order %s arrived after ORD%04d", p, o, last)
			}
			last = n
		}
	}
}

func crashOrder(i, patients int) []byte {
	p := fmt.Sprintf("CR%d", i%patients)
	return []byte(strings.Join([]string{
		fmt.Sprintf("MSH|^~\\&|EHR|HOSP|LAB|LAB|20240102030405||ORM^O01|CRASH%04d|P|2.3", i),
		"PID|1||" + p + "^^^HOSP^MR||DOE^JANE||19800101|F",
		fmt.Sprintf("ORC|NW|ORD%04d", i),
		fmt.Sprintf("OBR|1|ORD%04d||CBC^Full blood count^L", i),
	}, "\r") + "\r")
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
