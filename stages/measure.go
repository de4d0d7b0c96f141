package stages

import (
	"context"
	"time"

	"github.com/careflow-health/careflow/topics"
)

// Measure counts the records a stage consumes, by interface, and times
// those it processes: the time includes retries, which is what a record
// waited.
func Measure(stage string, m *Metrics) Middleware {
	return func(next Processor) Processor {
		return wrap(next, func(ctx context.Context, in Envelope) ([]Envelope, error) {
			m.In.WithLabelValues(stage, in.Headers.Get(topics.HeaderInterface)).Inc()
			start := time.Now()
			outs, err := next.Process(ctx, in)
			if err == nil {
				m.Latency.WithLabelValues(stage).Observe(time.Since(start).Seconds())
			}
			return outs, err
		})
	}
}
