package stages

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Recover turns a panic in the processor into a permanent error: a record
// a stage cannot handle (a bug meeting odd input) must be dead-lettered,
// not crash the engine, and then crash it again on every restart as the
// record is read again.
func Recover(stage string, log *slog.Logger) Middleware {
	return func(next Processor) Processor {
		return wrap(next, func(ctx context.Context, in Envelope) (outs []Envelope, err error) {
			defer func() {
				if p := recover(); p != nil {
					log.Error("stage panicked on a record; dead-lettering it", "topic", in.Topic, "partition", in.Partition,
						"offset", in.Offset, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
					outs, err = nil, Permanent(CodePanic, "", fmt.Errorf("stage %s could not process the record (a bug): %v", stage, p))
				}
			}()
			return next.Process(ctx, in)
		})
	}
}
