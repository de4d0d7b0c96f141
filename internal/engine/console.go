package engine

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/internal/console"
	"github.com/careflow-health/careflow/stages/deliver"
)

// mountConsole serves the operators' console under /console/ on the
// admin port when the configuration names its users file, and otherwise
// a page saying how to turn it on.
func (e *Engine) mountConsole(ctx context.Context, mux *http.ServeMux) error {
	cc := e.cfg.Console
	if !cc.Enabled() {
		mux.HandleFunc(console.Prefix, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "careflow: the console is off: set console.users_file (docs/console.md)", http.StatusNotFound)
		})
		return nil
	}
	users, err := console.LoadUsers(cc.UsersFile)
	if err != nil {
		return fmt.Errorf("engine: console: %w", err)
	}
	dests := map[string]deliver.Destination{}
	for _, d := range e.cfg.Destinations {
		if dests[d.Name], err = e.destination(d); err != nil {
			return err
		}
	}
	c, err := console.New(console.Config{
		Estate: e.cfg, Users: users, Kafka: e.kopts, Serde: e.serde, Metrics: e.metrics, Audit: e.audit,
		Render: func(name string, ev *avro.ClinicalEvent) ([]byte, error) {
			d, ok := dests[name]
			if !ok {
				return nil, fmt.Errorf("destination %s is not in this configuration", name)
			}
			return d.Render(ev, time.Now())
		},
		Observer: e.opts.InstanceID, Secure: e.cfg.Admin.TLS != nil, Logger: e.log,
	})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	mux.Handle(console.Prefix, c.Handler())
	e.group.Go(func() error { return c.Run(ctx) })
	if e.cfg.Analytics.Enabled() {
		e.group.Go(func() error { e.openConsoleAnalytics(ctx, c); return nil })
	}
	return nil
}

// openConsoleAnalytics opens ClickHouse for the console, retrying while
// it is unreachable (it may start after careflow), and closes it at the
// end.
func (e *Engine) openConsoleAnalytics(ctx context.Context, c *console.Console) {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		store, err := analytics.Open(ctx, e.cfg.Analytics.ClickHouse.DSN)
		if err == nil {
			c.UseAnalytics(store)
			<-ctx.Done()
			store.Close()
			return
		}
		e.log.Warn("console: ClickHouse not reachable yet; search and charts wait for it", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
