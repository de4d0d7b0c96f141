package stages

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/careflow-health/careflow/topics"
)

// RetryPolicy says how a record whose processing failed transiently is
// tried again in place: the first wait is Initial, each next one
// Multiplier times longer, capped at Max, for as long as HoldLimit allows.
type RetryPolicy struct {
	Initial, Max time.Duration
	Multiplier   float64
	HoldLimit    time.Duration
}

// heldError is a transient failure still failing at the hold limit (or at
// shutdown): the runner rewinds to the record and pauses for After.
type heldError struct {
	err   error
	after time.Duration
}

func (e *heldError) Error() string             { return e.err.Error() }
func (e *heldError) Unwrap() error             { return e.err }
func (e *heldError) RetryAfter() time.Duration { return e.after }

// Retry tries a transiently failing record again with backoff, keeping the
// outputs of every attempt (a retrying outcome each). A record still
// failing at the hold limit is returned with its last error, marked to
// pause for the next backoff, so that no transaction is held open by one
// record; so is one failing when the stage is asked to stop. A transient
// error that says how long to wait (RetryAfter, a destination's HTTP
// Retry-After) waits at least that long, in place or paused. Permanent and
// unavailable errors return at once.
func Retry(stage string, p RetryPolicy, m *Metrics, log *slog.Logger) Middleware {
	return func(next Processor) Processor {
		return wrap(next, func(ctx context.Context, in Envelope) ([]Envelope, error) {
			iface := in.Headers.Get(topics.HeaderInterface)
			backoff := p.Initial
			deadline := time.Now().Add(p.HoldLimit)
			var all []Envelope
			for {
				outs, err := next.Process(ctx, in)
				all = append(all, outs...)
				if err == nil || KindOf(err) != KindTransient {
					return all, err
				}
				m.Retries.WithLabelValues(stage, iface).Inc()
				// A destination that said when to come back (HTTP
				// Retry-After) is not tried sooner than that.
				wait := max(backoff, retryAfter(err, 0))
				stop := stopping(ctx)
				if stopped(stop) || time.Now().Add(wait).After(deadline) {
					// err's text is careflow's own (an *Error's Detail, a
					// destination's words, is never part of it).
					code, loc, _ := Describe(err)
					log.Warn("record still failing; rewinding and pausing", "interface", iface, "code", code, "location", loc, "err", err)
					return all, &heldError{err: err, after: wait}
				}
				t := time.NewTimer(wait)
				select {
				case <-stop:
					t.Stop()
					return all, &heldError{err: err, after: wait}
				case <-t.C:
				}
				backoff = min(time.Duration(float64(backoff)*p.Multiplier), p.Max)
			}
		})
	}
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// retryAfter is how long to pause the input for err (an Unavailable
// destination, a record held at its limit), or def when err says nothing.
func retryAfter(err error, def time.Duration) time.Duration {
	var ra RetryAfter
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return ra.RetryAfter()
	}
	return def
}
