package await

import (
	"errors"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	tests := []struct {
		name      string
		failFirst int // calls that fail before fn succeeds; -1: never
		timeout   time.Duration
		wantErr   bool
		wantCalls int
	}{
		{"succeeds at once", 0, time.Second, false, 1},
		{"succeeds on the third call", 2, time.Second, false, 3},
		{"zero timeout still calls once", 0, 0, false, 1},
		{"never succeeds", -1, 20 * time.Millisecond, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Poll(tc.timeout, time.Millisecond, func() error {
				calls++
				if tc.failFirst < 0 || calls <= tc.failFirst {
					return errors.New("not yet")
				}
				return nil
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantCalls > 0 && calls != tc.wantCalls {
				t.Fatalf("fn called %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr && calls < 2 {
				t.Fatalf("fn called %d times before giving up, want it retried", calls)
			}
		})
	}
}
