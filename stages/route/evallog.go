// This file logs route conditions that fail at run time. A broken route
// fails on every event it sees, so one line per failure would flood the
// log at message rate; one line per route per minute, saying how many
// failures it stands for, is enough to find the route, and
// careflow_route_eval_errors_total has the exact count.

package route

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"careflow/topics"
)

// evalLogEvery is how often, at most, one route's failures are logged at
// WARN.
const evalLogEvery = time.Minute

// evalLog rate-limits the warnings for failed conditions, per route. It is
// safe for concurrent use.
type evalLog struct {
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	routes map[string]*evalLogState // by route name
}

type evalLogState struct {
	logged     time.Time // when the last warning was written
	suppressed int       // failures since then that were not
}

func newEvalLog(log *slog.Logger, now func() time.Time) *evalLog {
	return &evalLog{log: log, now: now, routes: map[string]*evalLogState{}}
}

// failed records that route r's condition failed on the event with id
// messageID with an error of class class. The first failure of a route,
// and the first after evalLogEvery has passed since its last warning, is
// logged at WARN with the number of failures not logged in between; the
// others at DEBUG. No line holds event content: class is fixed text
// (errorClass) and messageID is careflow's id, not a patient's.
func (l *evalLog) failed(ctx context.Context, r *compiled, messageID, class string) {
	now := l.now()
	l.mu.Lock()
	st := l.routes[r.Name]
	if st == nil {
		st = &evalLogState{}
		l.routes[r.Name] = st
	}
	warn := st.logged.IsZero() || now.Sub(st.logged) >= evalLogEvery
	suppressed := st.suppressed
	if warn {
		st.logged, st.suppressed = now, 0
	} else {
		st.suppressed++
	}
	l.mu.Unlock()

	attrs := []any{"stage", topics.StageRoute, "route", r.Name, "destination", r.Destination,
		"error", class, "message_id", messageID}
	if !warn {
		l.log.DebugContext(ctx, "route condition failed; treated as no match", attrs...)
		return
	}
	attrs = append(attrs, "suppressed", suppressed)
	l.log.WarnContext(ctx, "route condition failed; treated as no match", attrs...)
}
