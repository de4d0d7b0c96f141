package stages

import "context"

// Processor is one stage's transform: one input record to zero or more
// output records. It must be deterministic for a given input (a replay after
// a crash must produce the same outputs) except for side effects the stage
// exists for (deliver's send). Errors are classified with Permanent,
// Transient or Unavailable.
//
// The outputs Process returns are produced even when it also returns an
// error, in the same transaction: a stage may record what happened (an
// invalid outcome, a retrying attempt) beside the failure. With a
// permanent error the record's dead letter is added to them; with a
// transient or unavailable one the record is processed again later, so its
// outputs are written once per attempt (make their ids differ per attempt,
// or make them the same record).
type Processor interface {
	Process(ctx context.Context, in Envelope) ([]Envelope, error)
	// Close releases what the processor holds (a connection to a
	// destination), once, after its last Process, when the stage stops.
	Close(ctx context.Context) error
}

// ProcessorFunc adapts a function to Processor; its Close does nothing.
type ProcessorFunc func(ctx context.Context, in Envelope) ([]Envelope, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, in Envelope) ([]Envelope, error) {
	return f(ctx, in)
}

// Close does nothing.
func (f ProcessorFunc) Close(context.Context) error { return nil }
