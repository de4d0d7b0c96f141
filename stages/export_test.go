package stages

// WithStoppingForTest gives tests the shutdown signal the runner puts in a
// processor's context.
var WithStoppingForTest = withStopping
