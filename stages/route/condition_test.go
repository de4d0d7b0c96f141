package route

import (
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"

	"careflow/avro"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string // substrings of the error
	}{
		{"empty", "  ", []string{"empty"}},
		{"syntax", `event.message_type == "ADT" &&`, []string{"Syntax error", "<input>:1:"}},
		{"syntax column", `event.message_type = "ADT"`, []string{"<input>:1:20"}},
		{"undeclared variable", `msg.type == "ADT"`, []string{"undeclared reference", "msg"}},
		{"string result", `"ADT"`, []string{"must return bool", "string"}},
		{"int result", `1 + 2`, []string{"must return bool", "int"}},
		{"dyn result", `event.message_type`, []string{"must return bool", "dyn"}},
		{"wrong overload", `event.orders.size() == "2"`, []string{"no matching overload"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.expr)
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestActivation evaluates the expressions the routing guide documents, so
// the variable's shape cannot drift from docs/routing.md.
func TestActivation(t *testing.T) {
	withEnc := order("ORM", "O01")
	withEnc.Observations = []avro.Observation{{OrderIndex: 0, Status: "F", Value: "x"}}
	withEnc.Orders[0].ResultStatus = "F"
	noEnc := result("lab-results", "P")
	tests := []struct {
		expr string
		ev   *avro.ClinicalEvent
		want bool
	}{
		{`event.event_type == "order"`, withEnc, true},
		{`event.message_type == "ORM" && event.trigger_event == "O01"`, withEnc, true},
		{`event.patient.identifiers[0].assigning_authority == "HOSP"`, withEnc, true},
		{`event.patient.identifiers.exists(i, i.type_code == "MR" && i.value != "")`, withEnc, true},
		{`event.patient.given_names[0] == "Ada"`, withEnc, true},
		{`event.orders[0].result_status == "F"`, withEnc, true},
		{`event.observations.exists(o, o.status == "F")`, withEnc, true},
		{`event.observations.exists(o, o.status == "F")`, noEnc, false},
		{`event.observations[0].order_index == 0`, withEnc, true},
		{`event.provenance.source_interface == "lab-results"`, noEnc, true},
		{`event.provenance.ingest_time > timestamp("2024-01-01T00:00:00Z")`, withEnc, true},
		{`event.encounter == null`, noEnc, true},
		{`event.encounter == null`, withEnc, false},
		{`event.encounter != null && event.encounter.patient_class == "I"`, withEnc, true},
		{`event.encounter != null && event.encounter.patient_class == "I"`, noEnc, false},
		{`size(event.patient.prior_identifiers) == 0`, withEnc, true},
		{`has(event.patient.sex)`, withEnc, true},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			prg, err := Compile(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := prg.Eval(Activation(tc.ev))
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if out != types.Bool(tc.want) {
				t.Errorf("= %v, want %v", out, tc.want)
			}
		})
	}
}

func TestErrorClass(t *testing.T) {
	ev := result("lab-results", "F")
	for expr, want := range map[string]string{
		`event.encounter.visit_number == "V1"`: "",
		`event.orders[5].result_status == "F"`: "index out of bounds",
		`event.nope == "x"`:                    "no such key",
	} {
		prg, err := Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = prg.Eval(Activation(ev))
		if err == nil {
			t.Fatalf("%s: no runtime error", expr)
		}
		got := errorClass(err)
		if strings.Contains(got, ":") || got == "" {
			t.Errorf("%s: class %q should be the message before its first colon", expr, got)
		}
		if want != "" && !strings.Contains(got, want) {
			t.Errorf("%s: class %q, want it to contain %q", expr, got, want)
		}
	}
}
