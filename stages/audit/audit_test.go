package audit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/topics"
)

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func setup(t *testing.T) (*Recorder, *clock, func(want int) []avro.AuditEvent) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.Audit))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	r := New(Config{Client: cl, Serde: serde, Observer: "test-1", Now: clk.now})
	read := func(want int) []avro.AuditEvent {
		t.Helper()
		if err := cl.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		rd, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topics.Audit),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		var out []avro.AuditEvent
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for len(out) < want {
			fs := rd.PollFetches(ctx)
			if ctx.Err() != nil {
				break
			}
			fs.EachRecord(func(rec *kgo.Record) {
				var ev avro.AuditEvent
				if err := serde.Decode(rec.Value, &ev); err != nil {
					t.Fatal(err)
				}
				out = append(out, ev)
			})
		}
		if len(out) != want {
			t.Fatalf("read %d audit records, want %d: %+v", len(out), want, out)
		}
		return out
	}
	return r, clk, read
}

func TestRecord(t *testing.T) {
	r, _, read := setup(t)
	r.Record(avro.AuditEvent{Type: TypeConfigurationLoaded, Action: avro.AuditExecute, Outcome: avro.AuditSuccess,
		AgentType: AgentCareflow, AgentWho: "careflow", EntityType: EntityConfiguration, EntityWhat: "careflow.yaml", EntityDetail: "sha256:abc"})
	got := read(1)[0]
	if got.AuditID == "" || got.Recorded.IsZero() || got.SourceObserver != "test-1" || got.Count != 1 || got.EntityDetail != "sha256:abc" {
		t.Errorf("record = %+v", got)
	}
}

// A flood of one refusal is one record a minute, counting the rest.
func TestRefusedFolds(t *testing.T) {
	r, clk, read := setup(t)
	lab := Refusal{Type: TypeWriterRefused, AgentType: AgentAddress, AgentNetwork: "10.1.2.3",
		EntityType: EntityInterface, EntityWhat: "lab-results", EntityDetail: "http", Reason: "no credential"}
	other := lab
	other.AgentNetwork = "10.9.9.9"
	for range 50 {
		r.Refused(lab)
	}
	r.Refused(other)
	clk.add(30 * time.Second)
	r.flush(false) // inside the window: nothing more
	for range 9 {
		r.Refused(lab)
	}
	clk.add(31 * time.Second)
	r.flush(false) // the window has passed: the 58 repeats
	r.Refused(lab) // a new window: written at once
	got := read(4)
	counts := map[string]int{}
	for _, ev := range got {
		counts[ev.AgentNetwork] += ev.Count
		if ev.Type != TypeWriterRefused || ev.Outcome != avro.AuditSeriousFailure || ev.OutcomeDesc != "no credential" {
			t.Errorf("record = %+v", ev)
		}
	}
	if counts["10.1.2.3"] != 60 || counts["10.9.9.9"] != 1 {
		t.Errorf("counts = %v, want 60 refusals from 10.1.2.3 and 1 from 10.9.9.9 in 4 records", counts)
	}
}

// Pending repeats are written when the recorder stops.
func TestRunFlushesOnStop(t *testing.T) {
	r, _, read := setup(t)
	f := Refusal{Type: TypeRegistryWriteRefused, AgentType: AgentAddress, AgentNetwork: "10.1.2.3",
		EntityType: EntitySchemaSubject, EntityWhat: "junk", Reason: "no admin token"}
	r.Refused(f)
	r.Refused(f)
	r.Refused(f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := read(2)
	if got[0].Count+got[1].Count != 3 {
		t.Errorf("counts %d + %d, want 3", got[0].Count, got[1].Count)
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.Record(avro.AuditEvent{Type: TypeRegistryWrite})
	r.Refused(Refusal{Type: TypeWriterRefused})
}
