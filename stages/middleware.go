package stages

// This file is how cross-cutting behaviour wraps a stage's transform: a
// Middleware takes a Processor and returns one that does something around
// it (recover a panic, retry a transient failure, dead-letter a permanent
// one, measure), one concern a file, so that the runner only runs.

import "context"

// Middleware wraps a Processor with one concern.
type Middleware func(Processor) Processor

// Chain wraps p in mws, the first outermost: Chain(p, a, b) is a(b(p)).
func Chain(p Processor, mws ...Middleware) Processor {
	for i := len(mws) - 1; i >= 0; i-- {
		p = mws[i](p)
	}
	return p
}

// wrap is a Processor whose Process is fn and whose Close is inner's, the
// shape of every middleware.
func wrap(inner Processor, fn func(ctx context.Context, in Envelope) ([]Envelope, error)) Processor {
	return wrapped{inner: inner, process: fn}
}

type wrapped struct {
	inner   Processor
	process func(ctx context.Context, in Envelope) ([]Envelope, error)
}

func (w wrapped) Process(ctx context.Context, in Envelope) ([]Envelope, error) {
	return w.process(ctx, in)
}

func (w wrapped) Close(ctx context.Context) error { return w.inner.Close(ctx) }

// stoppingKey carries, in a processor's context, the signal that the stage
// is shutting down. The runner runs processors on a context shutdown does
// not cancel (a record being processed is finished and committed), so a
// middleware that waits (Retry's backoff) needs the signal beside it.
type stoppingKey struct{}

// withStopping returns ctx carrying stop.
func withStopping(ctx context.Context, stop <-chan struct{}) context.Context {
	return context.WithValue(ctx, stoppingKey{}, stop)
}

// stopping returns the shutdown signal ctx carries, or nil (never).
func stopping(ctx context.Context) <-chan struct{} {
	stop, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	return stop
}
