package stages_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/stages"
)

// timers is a Ticker: every record it sees arms a timer, due after `after`,
// whose Tick output is one record on outTopic, written exactly once.
type timers struct {
	after time.Duration
	mu    sync.Mutex
	armed map[string]time.Time // value → due
	state *firedState
}

type firedState struct {
	mu        sync.Mutex
	pending   []string
	committed map[string]int
}

func (f *firedState) Commit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.pending {
		f.committed[v]++
	}
	f.pending = nil
}

func (f *firedState) Abort() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = nil
}

func (tm *timers) Process(_ context.Context, in stages.Envelope) ([]stages.Envelope, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if _, ok := tm.armed[string(in.Value)]; !ok {
		tm.armed[string(in.Value)] = time.Now().Add(tm.after)
	}
	return nil, nil
}

func (tm *timers) Tick(_ context.Context, now time.Time) ([]stages.Envelope, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	var out []stages.Envelope
	for v, due := range tm.armed {
		if now.Before(due) {
			continue
		}
		delete(tm.armed, v)
		tm.state.mu.Lock()
		tm.state.pending = append(tm.state.pending, v)
		tm.state.mu.Unlock()
		out = append(out, stages.Envelope{Topic: outTopic, Key: []byte(v), Value: []byte("fired " + v)})
	}
	return out, nil
}

func (tm *timers) Close(context.Context) error { return nil }

// A Ticker's due work is written with no record arriving to carry it, once
// per timer, and the state it changed commits with that transaction.
func TestTickerFiresWithoutInput(t *testing.T) {
	h := newHarness(t, 2)
	fs := &firedState{committed: map[string]int{}}
	tm := &timers{after: 300 * time.Millisecond, armed: map[string]time.Time{}, state: fs}
	stop := h.run(stages.RunnerConfig{Processor: tm, State: fs, TickEvery: 50 * time.Millisecond})
	defer stop()
	vals := values(20, "t")
	h.produce([]string{"a", "b", "c"}, vals)

	got := h.consume(outTopic, len(vals), 20*time.Second)
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
	}
	for _, v := range vals {
		if seen["fired "+v] != 1 {
			t.Errorf("timer for %s fired %d times on %s, want 1", v, seen["fired "+v], outTopic)
		}
	}
	// Nothing more fires after every timer has: each Tick's output was
	// written once.
	time.Sleep(300 * time.Millisecond)
	if extra := h.consume(outTopic, len(vals)+1, time.Second); len(extra) != len(vals) {
		t.Errorf("%d records on %s, want %d", len(extra), outTopic, len(vals))
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, v := range vals {
		if fs.committed[v] != 1 {
			t.Errorf("state committed %s %d times, want 1", v, fs.committed[v])
		}
	}
	if len(fs.committed) != len(vals) {
		t.Errorf("committed %d firings, want %d: %v", len(fs.committed), len(vals), fmt.Sprint(fs.committed))
	}
}
