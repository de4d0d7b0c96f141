// This file fuzzes Compile, which turns the route conditions of the
// configuration file into CEL programs, and what they do on events.

package route

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"

	"github.com/careflow-health/careflow/avro"
)

// fuzzPatientData are values of the fixture events' patients, which no
// evaluation error class may carry.
var fuzzPatientData = []string{"Lovelace", "Ada", "MRN001", "18151210", "PAS|MAIN|MSG0001"}

// FuzzCompile: Compile never panics; a condition it refuses is a
// *CompileError with at least one problem, each with a message and a
// place inside the condition, that shows none of CEL's internals; a
// condition it accepts evaluates to a bool or an error, without
// panicking, on a zero avro.ClinicalEvent through Activation and on the
// test events, the same through Activation and the stage's own
// activation; and the class of an evaluation error (what
// outcomes and logs carry) holds no patient data, digit or quote.
//
// testdata/fuzz/FuzzCompile/7446fb0453309b86 once put a problem at column
// 0: CEL places "argument must be a simple name" at column -1.
func FuzzCompile(f *testing.F) {
	for _, r := range demoRoutes {
		f.Add(r.When)
	}
	if demo, err := os.ReadFile("../../examples/demo/careflow.yaml"); err == nil {
		// Each when: >- block of the demo, joined as YAML folds it.
		for _, block := range regexp.MustCompile(`(?m)when: >-\n((?:\s{6}.*\n)+)`).FindAllStringSubmatch(string(demo), -1) {
			f.Add(strings.Join(strings.Fields(block[1]), " "))
		}
	}
	for _, s := range []string{
		`true`, `event.encounter.patient_class == "I"`, `event.encounter == null`, `has(event.encounter)`,
		`event.orders[0].status == "CM"`, `event.observations.exists(x, x.order_index == 1)`,
		`event.provenance.ingest_time > timestamp("2024-01-01T00:00:00Z")`, `size(event.patient.given_names) > 0`,
		`event.patient.family_name.matches("^L")`, `int(event.patient.birth_date) > 0`, `event.orders.map(o, o.status).size() > 0`,
		`event.messag_type == "ORM"`, `event.message_type == 1`, "event.message_type == \"ADT\" &&\n  event.trigger_evnt == \"A01\"",
		`[1,2,3].all(x, [1,2,3].all(y, [1,2,3].all(z, x+y+z > 0)))`, `event.orders.exist(o, o.status == "CM")`, `1 / 0 == 1`,
	} {
		f.Add(s)
	}
	events := []*avro.ClinicalEvent{{}, newEvent("ADT", "A01", "admit"), result("lab", "F", "P"), order("ORM", "O01")}
	f.Fuzz(func(t *testing.T, expr string) {
		prg, err := Compile(expr)
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q): error of type %T: %v", expr, err, err)
			}
			if len(ce.Problems) == 0 {
				t.Fatalf("Compile(%q): CompileError without problems", expr)
			}
			lines := strings.Count(expr, "\n") + 1
			for _, p := range ce.Problems {
				if p.Message == "" || p.Line < 0 || p.Line > lines || p.Column < 0 || (p.Line == 0) != (p.Column == 0) {
					t.Fatalf("Compile(%q): problem %+v has no message or is outside the condition's %d lines", expr, p, lines)
				}
			}
			msg := err.Error()
			for _, internal := range []string{"_==_", "_&&_", "@in", "<input>", "expecting {"} {
				if strings.Contains(msg, internal) && !strings.Contains(expr, internal) {
					t.Fatalf("Compile(%q): error shows CEL's internals (%q):\n%s", expr, internal, msg)
				}
			}
			return
		}
		for i, ev := range events {
			out, _, err := prg.Eval(Activation(ev))
			if err != nil {
				class := errorClass(err)
				if strings.ContainsAny(class, "0123456789\"") || class == "" {
					t.Fatalf("Compile(%q) on event %d: error class %q of %v", expr, i, class, err)
				}
				for _, v := range fuzzPatientData {
					if strings.Contains(class, v) {
						t.Fatalf("Compile(%q) on event %d: error class %q holds patient data", expr, i, class)
					}
				}
			} else if _, ok := out.(types.Bool); !ok {
				t.Fatalf("Compile(%q) on event %d: result %v of type %T, not bool", expr, i, out, out)
			}
			again, _, err2 := prg.ContextEval(context.Background(), eventActivation{ev})
			if (err == nil) != (err2 == nil) || err == nil && again != out {
				t.Fatalf("Compile(%q) on event %d: %v, %v through Activation; %v, %v through the stage's activation", expr, i, out, err, again, err2)
			}
		}
	})
}
