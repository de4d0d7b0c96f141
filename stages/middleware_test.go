package stages_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

var quiet = slog.New(slog.DiscardHandler)

func envelope() stages.Envelope {
	return stages.Envelope{Topic: "test.in", Key: []byte("k"), Value: []byte("v"), Partition: 2, Offset: 41,
		Headers: stages.Headers{{Key: topics.HeaderInterface, Value: []byte("ehr")}, {Key: topics.HeaderMessageID, Value: []byte("m1")}}}
}

func TestChainOrder(t *testing.T) {
	var trail []string
	mark := func(name string) stages.Middleware {
		return func(next stages.Processor) stages.Processor {
			return stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
				trail = append(trail, name)
				return next.Process(ctx, in)
			})
		}
	}
	p := stages.Chain(stages.ProcessorFunc(func(context.Context, stages.Envelope) ([]stages.Envelope, error) {
		trail = append(trail, "processor")
		return nil, nil
	}), mark("outer"), mark("inner"))
	if _, err := p.Process(context.Background(), envelope()); err != nil {
		t.Fatal(err)
	}
	if got := len(trail); got != 3 || trail[0] != "outer" || trail[1] != "inner" {
		t.Errorf("trail %v, want outer, inner, processor", trail)
	}
}

func TestRecover(t *testing.T) {
	p := stages.Recover("test", quiet)(stages.ProcessorFunc(func(context.Context, stages.Envelope) ([]stages.Envelope, error) {
		var m map[string]int
		m["boom"]++ // a nil map: a bug meeting odd input
		return nil, nil
	}))
	_, err := p.Process(context.Background(), envelope())
	if stages.KindOf(err) != stages.KindPermanent {
		t.Fatalf("panic became %v (%v), want a permanent error", stages.KindOf(err), err)
	}
	if code, _, _ := stages.Describe(err); code != stages.CodePanic {
		t.Errorf("code %q, want %q", code, stages.CodePanic)
	}
}

func TestRetry(t *testing.T) {
	policy := stages.RetryPolicy{Initial: time.Millisecond, Max: 4 * time.Millisecond, Multiplier: 2, HoldLimit: time.Second}
	cases := []struct {
		name      string
		fail      int   // attempts that fail before one succeeds
		err       error // what a failing attempt returns
		policy    stages.RetryPolicy
		stop      bool
		wantTries int
		wantKind  stages.Kind // of the error returned; 0 for none
		wantOuts  int
		retries   float64
	}{
		{"transient, then success: every attempt's outputs kept", 2, stages.Transient("t.x", errors.New("busy")), policy, false, 3, 0, 3, 2},
		{"permanent: not retried", 5, stages.Permanent("t.bad", "PID-3", errors.New("bad")), policy, false, 1, stages.KindPermanent, 1, 0},
		{"unavailable: not retried", 5, stages.Unavailable("t.down", errors.New("down")), policy, false, 1, stages.KindUnavailable, 1, 0},
		{"held at the limit", 1000, stages.Transient("t.x", errors.New("busy")),
			stages.RetryPolicy{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond, Multiplier: 1, HoldLimit: 50 * time.Millisecond}, false, 3, stages.KindTransient, 3, 3},
		{"stopping: returned at once", 1000, stages.Transient("t.x", errors.New("busy")), policy, true, 1, stages.KindTransient, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := stages.NewMetrics(nil)
			var tries atomic.Int32
			p := stages.Retry("test", c.policy, m, quiet)(stages.ProcessorFunc(func(context.Context, stages.Envelope) ([]stages.Envelope, error) {
				out := []stages.Envelope{{Topic: "test.out"}}
				if int(tries.Add(1)) <= c.fail {
					return out, c.err
				}
				return out, nil
			}))
			ctx := context.Background()
			if c.stop {
				stop := make(chan struct{})
				close(stop)
				ctx = stages.WithStoppingForTest(ctx, stop)
			}
			outs, err := p.Process(ctx, envelope())
			if int(tries.Load()) != c.wantTries || stages.KindOf(err) != c.wantKind || len(outs) != c.wantOuts {
				t.Fatalf("tries %d, kind %v (%v), outputs %d; want %d, %v, %d", tries.Load(), stages.KindOf(err), err, len(outs), c.wantTries, c.wantKind, c.wantOuts)
			}
			if got := testutil.ToFloat64(m.Retries.WithLabelValues("test", "ehr")); got != c.retries {
				t.Errorf("retries counted %v, want %v", got, c.retries)
			}
			var ra stages.RetryAfter
			if c.wantKind == stages.KindTransient && (!errors.As(err, &ra) || ra.RetryAfter() <= 0) {
				t.Errorf("a held record says no time to pause for: %v", err)
			}
		})
	}
}

// asksToWait is a destination's transient failure that says when to come
// back, as an HTTP Retry-After does.
type asksToWait time.Duration

func (a asksToWait) Error() string             { return "destination asked to wait" }
func (a asksToWait) RetryAfter() time.Duration { return time.Duration(a) }

func TestRetryHonoursRetryAfter(t *testing.T) {
	policy := stages.RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Multiplier: 2, HoldLimit: time.Second}
	cases := []struct {
		name      string
		after     time.Duration
		wantTries int
		wantHeld  time.Duration // the pause asked of the runner; 0 when the retry succeeded
	}{
		// Without it the backoff (1ms) would retry at once.
		{"within the hold limit: waits, then retries", 60 * time.Millisecond, 2, 0},
		// Longer than the hold limit: the record is held and the input
		// paused for as long as the destination asked, not the backoff.
		{"beyond the hold limit: paused for it", 7 * time.Second, 1, 7 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tries []time.Time
			p := stages.Retry("test", policy, stages.NewMetrics(nil), quiet)(stages.ProcessorFunc(func(context.Context, stages.Envelope) ([]stages.Envelope, error) {
				tries = append(tries, time.Now())
				if len(tries) == 1 {
					return nil, stages.Transient("http.429", fmt.Errorf("attempt 1: %w", asksToWait(c.after)))
				}
				return nil, nil
			}))
			_, err := p.Process(context.Background(), envelope())
			if len(tries) != c.wantTries {
				t.Fatalf("%d tries, want %d (err %v)", len(tries), c.wantTries, err)
			}
			if c.wantHeld == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if gap := tries[1].Sub(tries[0]); gap < c.after {
					t.Errorf("retried after %v; the destination asked for %v", gap, c.after)
				}
				return
			}
			var ra stages.RetryAfter
			if stages.KindOf(err) != stages.KindTransient || !errors.As(err, &ra) || ra.RetryAfter() != c.wantHeld {
				t.Fatalf("error %v, want a transient one pausing for %v", err, c.wantHeld)
			}
		})
	}
}

func TestDeadLetter(t *testing.T) {
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	m := stages.NewMetrics(nil)
	now := func() time.Time { return time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC) }
	outcome := stages.Envelope{Topic: topics.Outcomes}
	p := stages.DeadLetter("validate", serde, now, m, quiet)(stages.ProcessorFunc(func(context.Context, stages.Envelope) ([]stages.Envelope, error) {
		return []stages.Envelope{outcome}, stages.WithDetail(stages.Permanent("hl7.required_field", "PID-3", errors.New("PID-3 is missing")), "the sender's own words")
	}))
	outs, err := p.Process(context.Background(), envelope())
	if err != nil {
		t.Fatalf("the error was not consumed: %v", err)
	}
	if len(outs) != 2 || outs[0].Topic != topics.Outcomes || outs[1].Topic != topics.DeadLetter("validate") {
		t.Fatalf("outputs %+v, want the outcome and then the dead letter", outs)
	}
	dlEnv := outs[1]
	for k, want := range map[string]string{
		topics.HeaderDLQStage: "validate", topics.HeaderDLQCode: "hl7.required_field", topics.HeaderDLQLocation: "PID-3",
		topics.HeaderDLQTopic: "test.in", topics.HeaderDLQPartition: "2", topics.HeaderDLQOffset: "41", topics.HeaderMessageID: "m1",
	} {
		if got := dlEnv.Headers.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if got := dlEnv.Headers.Get(topics.HeaderDLQText); got == "" || got == "the sender's own words" {
		t.Errorf("error text header %q: careflow's words, never the detail", got)
	}
	var dl avro.DeadLetter
	if err := serde.Decode(dlEnv.Value, &dl); err != nil {
		t.Fatal(err)
	}
	if string(dl.OriginalValue) != "v" || dl.ErrorDetail != "the sender's own words" || dl.OriginalOffset != 41 {
		t.Errorf("dead letter %+v", dl)
	}
	if testutil.ToFloat64(m.DeadLettered.WithLabelValues("validate", "ehr")) != 1 || testutil.ToFloat64(m.Failed.WithLabelValues("validate", "ehr", "hl7.required_field")) != 1 {
		t.Error("dead letter not counted")
	}
	// Transient errors pass through untouched.
	tp := stages.DeadLetter("validate", serde, now, m, quiet)(stages.ProcessorFunc(func(context.Context, stages.Envelope) ([]stages.Envelope, error) {
		return nil, stages.Transient("t.x", errors.New("busy"))
	}))
	if _, err := tp.Process(context.Background(), envelope()); stages.KindOf(err) != stages.KindTransient {
		t.Errorf("transient error became %v", err)
	}
}

func TestMeasure(t *testing.T) {
	m := stages.NewMetrics(nil)
	p := stages.Measure("route", m)(stages.ProcessorFunc(func(context.Context, stages.Envelope) ([]stages.Envelope, error) { return nil, nil }))
	for range 3 {
		if _, err := p.Process(context.Background(), envelope()); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(m.In.WithLabelValues("route", "ehr")); got != 3 {
		t.Errorf("records in %v, want 3", got)
	}
	if got := testutil.CollectAndCount(m.Latency); got != 1 {
		t.Errorf("latency series %d, want 1", got)
	}
}

// closer is a processor that counts its Close calls and its records.
type closer struct {
	stages.ProcessorFunc
	closed, after atomic.Int32
}

func (c *closer) Close(context.Context) error { c.closed.Add(1); return nil }

// The runner closes its processor once, after the last record, when the
// stage stops: a destination's connection is released, not leaked.
func TestRunnerClosesProcessor(t *testing.T) {
	h := newHarness(t, 1)
	h.produce([]string{"k"}, []string{"x"})
	c := &closer{}
	c.ProcessorFunc = func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		if c.closed.Load() > 0 {
			c.after.Add(1)
		}
		return copyTo(outTopic)(ctx, in)
	}
	stop := h.run(stages.RunnerConfig{Processor: c})
	h.consume(outTopic, 1, 10*time.Second)
	if c.closed.Load() != 0 {
		t.Fatal("closed while running")
	}
	stop()
	if c.closed.Load() != 1 || c.after.Load() != 0 {
		t.Errorf("closed %d times, %d records after; want once, after the last", c.closed.Load(), c.after.Load())
	}
}
