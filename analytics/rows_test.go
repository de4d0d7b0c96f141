package analytics_test

import (
	"testing"

	"github.com/careflow-health/careflow/analytics"
)

// Len counts, and Reset empties, every kind of row: a kind left out of
// Len is never inserted on its own, and one left out of Reset is
// inserted again with every later batch.
func TestBatchLenAndReset(t *testing.T) {
	b := analytics.Batch{
		Transitions: make([]analytics.Transition, 1), Attempts: make([]analytics.Attempt, 1),
		DeadLetters: make([]analytics.DeadLetter, 1), SLAs: make([]analytics.MessageSLA, 1),
		Audits: make([]analytics.Audit, 1), Exceptions: make([]analytics.Exception, 1),
		Orders: make([]analytics.OrderTransition, 1), Reviews: make([]analytics.Review, 1),
	}
	if n := b.Len(); n != 8 {
		t.Errorf("Len = %d, want 8 (one row of each kind)", n)
	}
	b.Reset()
	if n := b.Len(); n != 0 {
		t.Errorf("Len after Reset = %d, want 0", n)
	}
	for name, n := range map[string]int{"exceptions": len(b.Exceptions), "orders": len(b.Orders), "reviews": len(b.Reviews)} {
		if n != 0 {
			t.Errorf("Reset left %d %s", n, name)
		}
	}
}
