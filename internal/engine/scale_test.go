package engine_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/topics"
)

// validateIn sums careflow_stage_records_in_total for the validate stage
// from an engine's /metrics.
func validateIn(t *testing.T, eng *engine.Engine) int {
	t.Helper()
	resp, err := http.Get("http://" + eng.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	total := 0
	re := regexp.MustCompile(`careflow_stage_records_in_total\{interface="[^"]*",stage="validate"\} (\d+)`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	return total
}

// A platform team scales a stage by running more copies against a shared
// Kafka and registry: one copy runs ingest, two copies run every other
// stage; the work is shared and every message is delivered once, in each
// patient's order.
func TestStagesScaleAcrossCopies(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the engines, which are cleaned up first
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(store)
	defer reg.Close()

	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)

	start := func(id string, stageNames []string) *engine.Engine {
		cfg := est.config(t)
		cfg.Admin.Listen = "127.0.0.1:0"
		if id != "ingest" {
			cfg.HTTP.Listen = ""
		}
		ctx, cancel := context.WithCancel(context.Background())
		eng, err := engine.Start(ctx, engine.Options{
			Config: cfg, Brokers: cluster.ListenAddrs(), SchemaRegistry: reg.URL,
			Stages: stageNames, InstanceID: id,
		})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); _ = eng.Wait() })
		return eng
	}
	start("ingest", []string{topics.StageIngest})
	rest := []string{topics.StageValidate, topics.StageNormalise, topics.StageRoute, topics.StageDeliver}
	b1 := start("b1", rest)
	b2 := start("b2", rest)

	c := &mllp.Client{Addr: est.EHR}
	defer c.Close()
	const perPatient, patients = 5, 8
	for i := range perPatient {
		for p := range patients {
			id := fmt.Sprintf("SC%d-%d", p, i)
			if ack := send(t, c, orm(fmt.Sprintf("SCALE%d", p), id, fmt.Sprintf("ORD%d-%d", p, i))); ack.Code != "AA" {
				t.Fatalf("ACK %s", ack.Code)
			}
		}
	}
	const total = perPatient * patients
	distinct := func() map[string]bool {
		seen := map[string]bool{}
		for _, m := range lab.messages() {
			seen[m.Get("ORC-2.1")] = true
		}
		return seen
	}
	await.For(t, 60*time.Second, 50*time.Millisecond, func() error {
		if n := len(distinct()); n < total {
			return fmt.Errorf("lab has %d of %d orders", n, total)
		}
		return nil
	})
	// Delivery to a third party is at least once: a rebalance that moves a
	// partition while a send is unconfirmed may resend it, with the same
	// control id. Such resends stay within one transaction's records.
	msgs := lab.messages()
	if dups := len(msgs) - total; dups > 10 {
		t.Fatalf("lab got %d messages for %d orders: %d duplicates is more than a rebalance explains", len(msgs), total, dups)
	}
	next := map[string]int{}
	for _, m := range msgs {
		var p, i int
		fmt.Sscanf(m.Get("ORC-2.1"), "ORD%d-%d", &p, &i)
		key := m.Get("PID-3.1")
		switch {
		case i < next[key]:
			continue // a resend of something already delivered
		case i != next[key]:
			t.Fatalf("patient %s: order %d arrived when %d was due", key, i, next[key])
		}
		next[key]++
	}
	n1, n2 := validateIn(t, b1), validateIn(t, b2)
	// Records replayed after a rebalance count again, so the sum may exceed
	// the messages sent; what matters is that both copies took work.
	if n1 == 0 || n2 == 0 || n1+n2 < perPatient*patients {
		t.Fatalf("validate copies processed %d and %d records, want both > 0 and %d at least in all", n1, n2, perPatient*patients)
	}
}
