// This file logs route conditions that fail at run time. A broken route
// fails on every event it sees, so one line per failure would flood the
// log at message rate; one line per route per minute, saying how many
// failures it stands for, is enough to find the route, and
// careflow_route_eval_errors_total has the exact count.

package route

import (
	"context"
	"log/slog"
	"time"

	"github.com/careflow-health/careflow/internal/ratelog"
	"github.com/careflow-health/careflow/topics"
)

// evalLog rate-limits the warnings for failed conditions, per route, to
// one a minute (ratelog's interval). It is safe for concurrent use.
type evalLog struct {
	log     *slog.Logger
	now     func() time.Time
	limiter ratelog.Limiter
}

func newEvalLog(log *slog.Logger, now func() time.Time) *evalLog {
	return &evalLog{log: log, now: now}
}

// failed records that route r's condition failed on the event with id
// messageID with an error of class class. The first failure of a route,
// and the first after a minute has passed since its last warning, is
// logged at WARN with the number of failures not logged in between; the
// others at DEBUG. No line holds event content: class is fixed text
// (errorClass) and messageID is careflow's id, not a patient's.
func (l *evalLog) failed(ctx context.Context, r *compiled, messageID, class string) {
	warn, suppressed := l.limiter.Allow(r.Name, l.now())
	attrs := []any{"stage", topics.StageRoute, "route", r.Name, "destination", r.Destination,
		"error", class, "message_id", messageID}
	if !warn {
		l.log.DebugContext(ctx, "route condition failed; treated as no match", attrs...)
		return
	}
	attrs = append(attrs, "suppressed", suppressed)
	l.log.WarnContext(ctx, "route condition failed; treated as no match", attrs...)
}
