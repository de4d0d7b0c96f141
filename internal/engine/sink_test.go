package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/peer"
	"github.com/careflow-health/careflow/topics"
)

// TestSinkFeedsClickHouse runs the whole engine with analytics on, and
// ClickHouse down at first: the pipeline delivers regardless; once
// ClickHouse is up every delivery reaches it, the SLA report measures lab
// against its destination SLA and the portal against its route's, and the
// engine's metrics pass promtool.
func TestSinkFeedsClickHouse(t *testing.T) {
	ch := chtest.Start(t)
	ch.Stop()
	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	portal := startPortal(t, est.Portal)
	cfg := est.config(t)
	cfg.Analytics.ClickHouse.DSN = ch.DSN("careflow")
	cfg.Analytics.BatchInterval = 100 * time.Millisecond
	for i, r := range cfg.Routes {
		if r.Name == "adt-to-portal" {
			cfg.Routes[i].SLA = time.Millisecond // every portal delivery is late
		}
	}
	eng := startEngine(t, cfg, t.TempDir())

	c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer c.Close()
	for i, p := range []string{"P1", "P2", "P3"} {
		if ack := send(t, c, adt("A01", p, fmt.Sprintf("SINK%d", i))); ack.Code != "AA" {
			t.Fatalf("ACK %s", ack.Code)
		}
	}
	await.For(t, 60*time.Second, 50*time.Millisecond, func() error {
		if len(lab.messages()) != 3 || portal.count() != 3 {
			return fmt.Errorf("lab has %d, portal %d; want 3 each while ClickHouse is down", len(lab.messages()), portal.count())
		}
		return nil
	})
	ch.Start()
	store, err := analytics.Open(context.Background(), ch.DSN("careflow"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	targets := analytics.Targets{}
	for _, d := range cfg.Destinations {
		targets[d.Name] = d.SLA
	}
	var rows []analytics.SLARow
	await.For(t, 60*time.Second, 100*time.Millisecond, func() error {
		rows, err = store.SLA(context.Background(), analytics.Filter{Interface: "ehr"}, targets, time.Now())
		if err != nil {
			return err
		}
		got := map[string]uint64{}
		for _, r := range rows {
			got[r.Destination] = r.Delivered
		}
		if got["lab"] != 3 || got["portal"] != 3 {
			return fmt.Errorf("delivered per destination %v; want lab 3, portal 3", got)
		}
		// The routed outcomes (route SLAs) and the delivered ones are separate records;
		// the sink may insert either first.
		for _, r := range rows {
			if r.Destination == "portal" && r.Breaches != 3 {
				return fmt.Errorf("portal breaches %d; want 3", r.Breaches)
			}
		}
		return nil
	})
	for _, r := range rows {
		switch r.Destination {
		case "lab":
			if r.Breaches != 0 || r.P50 <= 0 || r.Backlog != 0 {
				t.Errorf("lab: %+v; want no breach against 60s, a latency, no backlog", r)
			}
		case "portal":
			if r.Breaches != 3 {
				t.Errorf("portal: %+v; want 3 breaches of the route's SLA", r)
			}
		}
	}

	// The counters follow the insert, and lag is refreshed on a timer.
	var metrics string
	await.For(t, 30*time.Second, 100*time.Millisecond, func() error {
		metrics = get(t, "http://"+eng.AdminAddr()+"/metrics")
		for _, name := range []string{"careflow_sink_rows_total", "careflow_sink_batch_rows", "careflow_sink_insert_seconds",
			"careflow_consumer_lag{", `careflow_sla_deliveries_total{destination="portal"} 3`} {
			if !strings.Contains(metrics, name) {
				return fmt.Errorf("/metrics has no %s", name)
			}
		}
		return nil
	})
	promtool(t, []byte(metrics), "check", "metrics")
	promtool(t, nil, "check", "rules", "../../deploy/prometheus/alerts.yml")
}

// TestAlertRules runs the alert rules' unit tests: each alert fires when,
// and only when, it should.
func TestAlertRules(t *testing.T) {
	promtool(t, nil, "test", "rules", "../../deploy/prometheus/alerts_test.yml")
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// promtool runs Prometheus's checker (Debian package prometheus); skipped
// when it is missing unless CAREFLOW_REQUIRE_PEERS is set.
func promtool(t *testing.T, stdin []byte, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv(peer.RequireEnv) != "" {
			t.Fatalf("promtool is not installed (apt-get install -y prometheus), and %s is set", peer.RequireEnv)
		}
		t.Logf("promtool %s skipped: not installed", strings.Join(args, " "))
		return
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestSinkAsItsOwnStage runs the sink alone (what `careflow stage sink`
// does) beside an engine without analytics, sharing its broker and registry.
func TestSinkAsItsOwnStage(t *testing.T) {
	ch := chtest.Start(t)
	est := newEstate(t)
	startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	primary := startEngine(t, est.config(t), t.TempDir())

	cfg := est.config(t)
	cfg.Admin.Listen, cfg.HTTP.Listen = "127.0.0.1:0", ""
	cfg.Analytics.ClickHouse.DSN = ch.DSN("careflow")
	cfg.Analytics.BatchInterval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	sinkEng, err := engine.Start(ctx, engine.Options{Config: cfg, Brokers: primary.Brokers(),
		SchemaRegistry: "http://" + primary.AdminAddr(), Stages: []string{topics.StageSink}, InstanceID: "sink-1"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := sinkEng.Wait(); err != nil {
			t.Errorf("sink engine: %v", err)
		}
	}()

	c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer c.Close()
	if ack := send(t, c, adt("A01", "P9", "ALONE1")); ack.Code != "AA" {
		t.Fatalf("ACK %s", ack.Code)
	}
	store, err := analytics.Open(context.Background(), ch.DSN("careflow"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	await.For(t, 60*time.Second, 100*time.Millisecond, func() error {
		rows, err := store.SLA(context.Background(), analytics.Filter{Destination: "lab"}, nil, time.Now())
		if err != nil {
			return err
		}
		if len(rows) != 1 || rows[0].Delivered != 1 {
			return fmt.Errorf("lab rows %+v; want one delivered", rows)
		}
		return nil
	})
}
