package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/topics"
)

const (
	demoConfig = "../../examples/demo/careflow.yaml"
	examples   = "../../examples/messages"
)

func TestEchoLimitCountsEveryMessage(t *testing.T) {
	mix, err := LoadMix(examples)
	if err != nil {
		t.Fatal(err)
	}
	for _, conns := range []int{1, 8} {
		res, err := EchoLimit(context.Background(), [][]byte{mix.Message("C", 1)}, conns, 777)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent != 777 || res.AA != 777 || res.Rate <= 0 {
			t.Fatalf("conns=%d: %+v, want 777 sent and AA", conns, res)
		}
	}
}

func TestMix(t *testing.T) {
	mix, err := LoadMix(examples)
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []string{"ADT^A01", "ORM^O01", "ADT^A08", "ADT^A01", "ADT^A01"}
	for seq, want := range wantTypes {
		m, err := hl7v2.Parse(mix.Message("P", seq))
		if err != nil {
			t.Fatal(err)
		}
		typ := m.Get("MSH-9.1") + "^" + m.Get("MSH-9.2")
		if typ != want || m.Get("MSH-10") != "P"+string(rune('0'+seq)) || m.Get("PID-3.1") != PatientPrefix+string(rune('0'+seq)) {
			t.Errorf("message %d: %s control %s patient %s", seq, typ, m.Get("MSH-10"), m.Get("PID-3.1"))
		}
	}
	// Four messages: A01 (3), ORM (2), A08 (3), A01 (3).
	if got := mix.Deliveries(0, 4); got != 11 {
		t.Errorf("Deliveries(0, 4) = %d, want 11", got)
	}
	if got := mix.Deliveries(1, 2); got != 2 {
		t.Errorf("Deliveries(1, 2) = %d, want 2", got)
	}
}

// A short end-to-end run through the real engine: every message reaches
// its destinations and every latency phase accounts for every message.
func TestEndToEndCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the engine")
	}
	res, err := EndToEnd(context.Background(), demoConfig, examples, t.TempDir(), 400, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 400 || res.Deliveries != 1100 || res.Peak <= 0 {
		t.Fatalf("%+v", res)
	}
	for _, l := range []Latency{res.At50, res.At90} {
		if l.Sent == 0 || l.Missing != 0 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
			t.Fatalf("latency phase %+v", l)
		}
	}
	ing, err := Ingest(context.Background(), demoConfig, examples, t.TempDir(), "", 2, 300, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if ing.Peak.AA != 300 || ing.At50.AA == 0 || !strings.Contains(ing.Peak.String(), "AA 300 ") {
		t.Fatalf("ingest %+v", ing)
	}
}

// The estate's Ack option overrides every interface's ack mode: an ORU to
// the demo's ehr interface (which takes ADT and orders) is answered AR (a
// type it does not take) under the demo's ack: validated and AA under ack:
// commit; Ingest with no latency phase measures only the peak.
func TestEstateAckMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the engine")
	}
	oru := []byte("MSH|^~\\&|TRAKCARE|NORTHGATE|CAREFLOW|HOSPITAL|20250101||ORU^R01|B1|P|2.5.1\rPID|1||NG1^^^NORTHGATE^MR||DOE^JO\r")
	for _, tc := range []struct {
		ack  string
		want hl7v2.AckCode
	}{{"", hl7v2.AckAR}, {config.AckCommit, hl7v2.AckAA}} {
		est, err := StartEstate(context.Background(), EstateOptions{Config: demoConfig, DataDir: t.TempDir(), Stages: []string{topics.StageIngest}, Ack: tc.ack})
		if err != nil {
			t.Fatal(err)
		}
		c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
		reply, err := c.Send(context.Background(), oru)
		c.Close()
		est.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ack, err := hl7v2.ParseACK(reply); err != nil || ack.Code != tc.want {
			t.Errorf("ack %q: ORU to ehr answered %q (%v), want %s", tc.ack, reply, err, tc.want)
		}
	}
	ing, err := Ingest(context.Background(), demoConfig, examples, t.TempDir(), config.AckCommit, 2, 100, 0)
	if err != nil || ing.Peak.AA != 100 || ing.At50.Sent != 0 {
		t.Fatalf("Ingest at ack: commit without a latency phase: %+v, %v", ing, err)
	}
}

func TestStageLoopsAndKafkaLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the engine")
	}
	rates, err := StageLoops(context.Background(), demoConfig, examples, t.TempDir(), 200)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"validate": 200, "normalise": 200, "route": 200, "deliver": 550} // lab 200, FHIR store 200, portal 150
	if len(rates) != 4 {
		t.Fatalf("%d stage rates, want 4", len(rates))
	}
	for _, r := range rates {
		if r.Records != want[r.Stage] || r.Rate <= 0 {
			t.Errorf("%+v, want %d records", r, want[r.Stage])
		}
	}
	rate, err := KafkaLimit(context.Background(), examples, t.TempDir(), 4, 500)
	if err != nil || rate <= 0 {
		t.Fatalf("kafka limit %v, %v", rate, err)
	}
}

// The backlog run delivers every message to the lab once it is back, and
// the engine's memory is that of the process it started and stopped, not
// this one's.
func TestBacklogCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds careflow and runs it")
	}
	binary := filepath.Join(t.TempDir(), "careflow")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/careflow").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	res, err := Backlog(context.Background(), binary, demoConfig, examples, t.TempDir(), 300)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Messages != 300 || res.DrainRate <= 0 || res.EngineRSSBeforeMiB <= 0 ||
		res.EnginePeakRSSMiB < res.EngineRSSBeforeMiB || res.BrokerPeakRSSMiB <= 0 {
		t.Fatalf("%+v", res)
	}
	if res.EnginePID == os.Getpid() || res.EnginePeakRSSMiB == res.BrokerPeakRSSMiB {
		t.Fatalf("engine memory read from the bench's own process: %+v", res)
	}
	if _, err := procMemMiB(res.EnginePID); err == nil {
		t.Fatalf("engine pid %d still running after Backlog returned: not the engine it started", res.EnginePID)
	}
}

func TestProcMem(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here")
	}
	self, err := procMemMiB(os.Getpid())
	if err != nil || self.RSS <= 0 || self.HWM < self.RSS {
		t.Fatalf("this process: %+v, %v", self, err)
	}
	if _, err := procMemMiB(-1); err == nil {
		t.Fatal("no error for a process that cannot exist")
	}
}

// Each stage as its own process, two copies of each: every message is
// delivered (the run fails otherwise) and a rate comes back.
func TestEndToEndProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds careflow and starts a process per stage")
	}
	binary := buildCareflow(t)
	dir := t.TempDir()
	rate, err := EndToEndProcesses(context.Background(), binary, demoConfig, examples, dir, 300, 2)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "stages.log"))
		t.Fatalf("%v\nstage processes' log:\n%s", err, log)
	}
	if rate <= 0 {
		t.Fatalf("rate %v", rate)
	}
}

// FHIRIngest's creates are all answered 201 (it fails otherwise) and it
// reports a rate.
func TestFHIRIngestCreates(t *testing.T) {
	rate, err := FHIRIngest(context.Background(), t.TempDir(), 2, 50)
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Errorf("rate %v", rate)
	}
}

// buildCareflow builds the binary the per-process benchmarks run.
func buildCareflow(t *testing.T) string {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "careflow")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/careflow").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return binary
}

// FHIRIngestProcess drives `careflow run` as its own process over HTTP
// and MLLP: every FHIR create answered 201 and every HL7 v2 message AA
// (it fails otherwise), and both rates reported.
func TestFHIRIngestProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds careflow and runs it")
	}
	dir := t.TempDir()
	res, err := FHIRIngestProcess(context.Background(), buildCareflow(t), examples, dir, 100)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "engine.log"))
		t.Fatalf("%v\nthe engine's log:\n%s", err, log)
	}
	if res.FHIRCreates <= 0 || res.HL7v2 <= 0 {
		t.Errorf("rates %+v", res)
	}
}
