package stages

import "context"

// Processor is one stage's transform: one input record to zero or more
// output records. It must be deterministic for a given input (a replay after
// a crash must produce the same outputs) except for side effects the stage
// exists for (deliver's send). Errors are classified with Permanent,
// Transient or Unavailable.
type Processor interface {
	Process(ctx context.Context, in Envelope) ([]Envelope, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, in Envelope) ([]Envelope, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, in Envelope) ([]Envelope, error) {
	return f(ctx, in)
}
