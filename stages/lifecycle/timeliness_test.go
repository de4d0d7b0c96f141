package lifecycle

import (
	"testing"
	"time"
)

// An order past its deadlines raises late_acceptance while it is placed
// or sent, late_result until a result moves it on, each once; an order
// that moved on in time raises nothing, and NextDeadline says when to
// look again.
func TestOverdue(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		state string
		at    time.Duration
		want  []string
		next  time.Duration // 0: none left
	}{
		{"before both", Sent, 4 * time.Minute, nil, 5 * time.Minute},
		{"not accepted in time", Sent, 6 * time.Minute, []string{LateAcceptance}, time.Hour},
		{"accepted, not resulted", Accepted, 2 * time.Hour, []string{LateResult}, 0},
		{"both passed at once", Placed, 2 * time.Hour, []string{LateAcceptance, LateResult}, 0},
		{"resulted in time", Preliminary, 2 * time.Hour, nil, 0},
		{"cancelled", Cancelled, 2 * time.Hour, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Patient{Orders: []Order{{Placer: "RP1^EHR", State: tc.state}}}
			p.Expect("RP1^EHR", Expect{AcceptedWithin: 5 * time.Minute, ResultedWithin: time.Hour}, t0)
			var got []string
			for _, x := range p.Overdue(t0.Add(tc.at)) {
				got = append(got, x.Code)
				if x.Order != "RP1^EHR" || !x.Deliver {
					t.Errorf("exception %+v", x)
				}
			}
			if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Errorf("overdue %v, want %v", got, tc.want)
			}
			next := p.NextDeadline()
			if again := p.Overdue(t0.Add(tc.at)); len(again) != 0 {
				t.Errorf("raised again: %v", again)
			}
			if tc.next == 0 && !next.IsZero() || tc.next != 0 && !next.Equal(t0.Add(tc.next)) {
				t.Errorf("next deadline %v, want %v after %v", next, tc.next, t0)
			}
		})
	}
}
