package engine_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/logbuf"
)

// Issue 4 and the house rules: at info level nothing is logged per message
// (a hundred messages add no log lines), and no log line carries patient
// data.
func TestNoPerMessageLogsAtInfo(t *testing.T) {
	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	portal := startPortal(t, est.Portal)
	logs := &logbuf.Buffer{}
	startEngineWith(t, engine.Options{
		Config: est.config(t),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})

	c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer c.Close()
	sent := 0
	sendMany := func(n int) {
		for range n {
			sent++
			patient, id := fmt.Sprintf("LOGPAT%04d", sent), fmt.Sprintf("LOGCTL%04d", sent)
			if ack := send(t, c, adt("A01", patient, id)); ack.Code != "AA" {
				t.Fatalf("ACK %s for %s", ack.Code, id)
			}
		}
		// Each A01 goes to the lab and the portal.
		await.For(t, 60*time.Second, 20*time.Millisecond, func() error {
			if l, p := len(lab.messages()), portal.count(); l < sent || p < sent {
				return fmt.Errorf("lab has %d, portal %d of %d", l, p, sent)
			}
			return nil
		})
	}
	sendMany(5) // warm up: joins, first deliveries, breakers closed
	before := len(logs.Lines())
	if before < 3 {
		// The engine logs its start and each stage's partitions: fewer
		// lines means the logger given was not the one used.
		t.Fatalf("the engine logged %d lines at start: %q", before, logs.Lines())
	}
	sendMany(100)
	after := logs.Lines()
	if grew := len(after) - before; grew > 5 {
		t.Errorf("100 messages added %d log lines at info level, want none per message:\n%s", grew, strings.Join(after[before:], "\n"))
	}
	for _, line := range after {
		for _, phi := range []string{"LOGPAT", "DOE", "JANE", "19800101", "HIGH ST"} {
			if strings.Contains(line, phi) {
				t.Errorf("log line carries patient data %q: %s", phi, line)
			}
		}
	}
}

// The Kafka client's own log is opt-in (careflow run --kafka-log-level)
// and goes to its own logger, each stage's client tagged with the stage; the
// engine's log never carries it.
func TestKafkaClientLogIsOptInAndTaggedByStage(t *testing.T) {
	est := newEstate(t)
	logs, klogs := &logbuf.Buffer{}, &logbuf.Buffer{}
	startEngineWith(t, engine.Options{
		Config:      est.config(t),
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KafkaLogger: slog.New(slog.NewTextHandler(klogs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, l := range klogs.Lines() {
			if strings.Contains(l, "stage=validate") && strings.Contains(l, "group") {
				return nil
			}
		}
		return fmt.Errorf("no Kafka client line for the validate stage's group among %d", len(klogs.Lines()))
	})
	for _, l := range logs.Lines() {
		if strings.Contains(l, "beginning to manage the group lifecycle") || strings.Contains(l, "initializing producer id") {
			t.Fatalf("the Kafka client's log reached the engine's: %s", l)
		}
	}
}
