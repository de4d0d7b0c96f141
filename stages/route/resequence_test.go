package route

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// out_of_order: hold. Every ADT message of the interface is held; when
// one falls due it is routed with every held message of the patient that
// happened before it, oldest first, so updates that arrived out of order
// are delivered in order and none is refused. An update overtaken by more
// than the hold is still stale. A resend of a held message is held once.
func TestResequence(t *testing.T) {
	clk := &clock{t: routeTime}
	patients, orders := stages.NewTable(topics.PatientState), stages.NewTable(topics.OrderState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) {
		c.Patients, c.Orders, c.Now = patients, orders, clk.now
		c.Interfaces = map[string]Policy{"ehr": {Resequence: 30 * time.Second}}
	})
	commit := func() { patients.Commit(); orders.Commit(); h.stage.Timers().Commit() }
	lab := topics.Outbound("lab")
	process := func(ev *avro.ClinicalEvent, after time.Duration) []stages.Envelope {
		t.Helper()
		clk.t = routeTime.Add(after)
		ev.Provenance.Interface = "ehr"
		outs, err := h.stage.Process(context.Background(), h.input(t, ev))
		if err != nil {
			t.Fatal(err)
		}
		commit()
		return outs
	}
	tick := func(after time.Duration) (routed []string, stale []string) {
		t.Helper()
		clk.t = routeTime.Add(after)
		outs, err := h.stage.Tick(context.Background(), clk.t)
		if err != nil {
			t.Fatal(err)
		}
		commit()
		for _, o := range outs {
			switch o.Topic {
			case lab:
				var ev avro.ClinicalEvent
				if err := h.serde.Decode(o.Value, &ev); err != nil {
					t.Fatal(err)
				}
				routed = append(routed, ev.EventID)
			case topics.Exceptions:
				var x avro.Exception
				if err := h.serde.Decode(o.Value, &x); err != nil {
					t.Fatal(err)
				}
				stale = append(stale, x.MessageID+" "+x.Code)
			}
		}
		return routed, stale
	}

	// m2 (10:00) arrives first, m1 (09:00) a few seconds later.
	for _, step := range []struct {
		ev    *avro.ClinicalEvent
		after time.Duration
	}{
		{at("A08", "m2", "20250314100000", "20250314100000"), 0},
		{at("A08", "m1", "20250314090000", "20250314090000"), 5 * time.Second},
		{at("A08", "m1", "20250314090000", "20250314090000"), 6 * time.Second}, // a resend
	} {
		outs := process(step.ev, step.after)
		if slices.Contains(topicsOf(outs), lab) || slices.Contains(topicsOf(outs), topics.Exceptions) {
			t.Fatalf("%s was routed at once: %v", step.ev.EventID, topicsOf(outs))
		}
		if step.after == 6*time.Second {
			if len(outs) != 0 {
				t.Errorf("the resend of a held message: outputs %v, want none", topicsOf(outs))
			}
			continue
		}
		if o := decodeOutcome(t, h, outs[:1]); o.Status != avro.StatusHeld || o.ErrorCode != CodeResequencing {
			t.Errorf("%s: outcome %s %s, want held %s", step.ev.EventID, o.Status, o.ErrorCode, CodeResequencing)
		}
	}
	if routed, stale := tick(29 * time.Second); len(routed)+len(stale) != 0 {
		t.Errorf("before the hold: routed %v, exceptions %v", routed, stale)
	}
	// m2 is due: it and the older m1 go, m1 first; m1 is not stale.
	if routed, stale := tick(31 * time.Second); strings.Join(routed, ",") != "m1,m2" || len(stale) != 0 {
		t.Errorf("after m2's hold: routed %v (want m1,m2), exceptions %v", routed, stale)
	}
	// m0 (08:00) comes after m2 went out: held, then refused as stale.
	process(at("A08", "m0", "20250314080000", "20250314080000"), 40*time.Second)
	if routed, stale := tick(71 * time.Second); len(routed) != 0 || strings.Join(stale, ",") != "m0 stale_update" {
		t.Errorf("late m0: routed %v, exceptions %v; want m0 stale_update", routed, stale)
	}
	if routed, stale := tick(2 * time.Minute); len(routed)+len(stale) != 0 {
		t.Errorf("released twice: routed %v, exceptions %v", routed, stale)
	}
}
