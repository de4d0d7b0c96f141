// Package await polls a condition in tests until it holds or a deadline
// passes. Pipelines are asynchronous end to end, so a test that checks
// once either sleeps too long or fails at random; one poller, used by
// every package's tests, keeps the deadline and the failure message the
// same everywhere.
package await

import (
	"testing"
	"time"
)

// For calls fn every interval until it returns nil, and fails t with fn's
// last error if that has not happened within timeout. fn runs at least
// once, even with a zero timeout.
func For(t testing.TB, timeout, every time.Duration, fn func() error) {
	t.Helper()
	if err := Poll(timeout, every, fn); err != nil {
		t.Fatalf("condition not met within %s: %v", timeout, err)
	}
}

// Poll is For without a test: it returns fn's last error, or nil once fn
// succeeds.
func Poll(timeout, every time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(every)
	}
}
