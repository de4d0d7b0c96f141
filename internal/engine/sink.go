package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/google/cel-go/common/types"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/route"
	"github.com/careflow-health/careflow/stages/sink"
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
	slas, err := e.routeSLAs()
	if err != nil {
		return err
	}
	targets := analytics.Targets{}
	for _, d := range e.cfg.Destinations {
		targets[d.Name] = d.SLA
	}
	st, err := sink.New(sink.Config{
		DSN: a.ClickHouse.DSN, Kafka: e.kopts, Serde: e.serde,
		BatchRows: a.BatchRows, BatchInterval: a.BatchInterval,
		SLAs: slas, Targets: targets, Metrics: m, StageMetrics: e.stageM, Logger: e.log,
	})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	e.group.Go(func() error { return st.Run(ctx) })
	return nil
}

// routeSLAs returns a function that names, for an event, the SLA each
// destination owes it: the tightest of the routes that take it there. The
// route stage does not record which route matched, so the sink evaluates
// the same conditions.
func (e *Engine) routeSLAs() (func(*avro.ClinicalEvent) []analytics.MessageSLA, error) {
	type compiled struct {
		r     int // index into the configuration's routes
		match func(map[string]any) bool
	}
	var routes []compiled
	for i, r := range e.cfg.Routes {
		prg, err := route.Compile(r.When)
		if err != nil {
			return nil, fmt.Errorf("engine: route %s: %w", r.Name, err)
		}
		routes = append(routes, compiled{i, func(act map[string]any) bool {
			v, _, err := prg.Eval(act)
			return err == nil && v == types.True
		}})
	}
	cfgRoutes := e.cfg.Routes
	return func(ev *avro.ClinicalEvent) []analytics.MessageSLA {
		act := route.Activation(ev)
		var out []analytics.MessageSLA
		for _, r := range routes {
			cr := cfgRoutes[r.r]
			if cr.SLA <= 0 || !r.match(act) {
				continue
			}
			found := false
			for i := range out {
				if out[i].Destination == cr.Destination {
					found = true
					if cr.SLA < out[i].SLA {
						out[i].SLA, out[i].Route = cr.SLA, cr.Name
					}
				}
			}
			if !found {
				out = append(out, analytics.MessageSLA{Destination: cr.Destination, Route: cr.Name, SLA: cr.SLA})
			}
		}
		return out
	}, nil
}
