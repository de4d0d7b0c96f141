package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/stages/sink"
	"github.com/careflow-health/careflow/topics"
)

// lagEvery is how often consumer lag is refreshed.
const lagEvery = 15 * time.Second

// startSink exports every careflow consumer group's lag and, when the
// configuration names a ClickHouse, starts the analytics sink. It does not
// wait for ClickHouse: the sink retries in the background while the
// pipeline runs.
func (e *Engine) startSink(ctx context.Context) error {
	m := sink.NewMetrics(e.metrics)
	e.group.Go(func() error {
		sink.WatchLag(ctx, e.client, m, lagEvery, e.log)
		return nil
	})
	a := e.cfg.Analytics
	if !a.Enabled() {
		return nil
	}
	targets := analytics.Targets{}
	for _, d := range e.cfg.Destinations {
		targets[d.Name] = d.SLA
	}
	st, err := sink.New(sink.Config{
		DSN: a.ClickHouse.DSN, Kafka: e.kafkaFor(topics.StageSink), Serde: e.serde,
		BatchRows: a.BatchRows, BatchInterval: a.BatchInterval,
		Targets: targets, Metrics: m, StageMetrics: e.stageM, Logger: e.log,
	})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	e.group.Go(func() error { return st.Run(ctx) })
	return nil
}
