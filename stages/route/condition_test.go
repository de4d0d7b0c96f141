package route

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"

	"github.com/careflow-health/careflow/avro"
)

// TestCompileErrors: mistakes that used to pass `careflow check` and fail
// (or silently not match) on every event are compile errors that say
// what is wrong, where, and what was probably meant.
func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, expr string
		want       string // the first problem's message and position
	}{
		// The three typos of the report.
		{"misspelt field", `event.messag_type == "ORM"`,
			"undefined field 'messag_type' (did you mean 'message_type'?) at column 6"},
		{"string compared with int", `event.message_type == 1`,
			"found no matching overload for '==' applied to '(string, int)' at column 20"},
		{"bare field", `event.message_type`,
			"route condition must return bool, not string: compare it"},

		{"unknown nested field", `event.encounter.patient_clas == "I"`,
			"undefined field 'patient_clas' (did you mean 'patient_class'?) at column 16"},
		{"field of another record", `event.provenance.interface == "ehr"`,
			"undefined field 'interface' (did you mean 'source_interface'?)"},
		{"Go field name", `event.MessageType == "ORM"`,
			"undefined field 'MessageType' (did you mean 'message_type'?)"},
		{"no close field", `event.status == "F"`,
			"undefined field 'status' at column 6"},
		{"list element field in exists", `event.orders.exists(o, o.result_stat == "F")`,
			"undefined field 'result_stat' (did you mean 'result_status'?) at column 25"},
		{"list element field by index", `event.orders[0].result_stat == "F"`,
			"undefined field 'result_stat' (did you mean 'result_status'?)"},
		{"nested list element field", `event.patient.identifiers.exists(i, i.typecode == "MR")`,
			"undefined field 'typecode' (did you mean 'type_code'?)"},
		{"observation field in all", `event.observations.all(x, x.stauts == "F")`,
			"undefined field 'stauts' (did you mean 'status'?)"},
		{"int compared with string", `event.observations[0].order_index == "0"`,
			"applied to '(int, string)'"},
		{"size compared with string", `size(event.orders) == "2"`,
			"applied to '(int, string)'"},
		{"timestamp compared with string", `event.provenance.ingest_time > "2024-01-01"`,
			"found no matching overload for '>' applied to '(timestamp, string)'"},
		{"string compared with null", `event.message_type == null`,
			"applied to '(string, null)'"},
		{"record compared with string", `event.encounter == "I"`,
			"applied to '(avro.Encounter, string)'"},
		{"field of a string", `event.message_type.code == "ORM"`,
			"type 'string' does not support field selection"},
		{"predicate not bool", `event.orders.exists(o, o.result_status)`,
			"expected type 'bool' but found 'string' at column 25"},
		{"list result", `event.orders`,
			"route condition must return bool, not list(avro.Order): test it, e.g. `size(event.orders) > 0`"},
		{"record result", `event.encounter`,
			"route condition must return bool, not avro.Encounter: test a field of it, or whether it is present"},
		{"int result", `1 + 2`, "must return bool, not int"},
		{"misspelt function", `event.message_type.startWith("OR")`,
			"undeclared reference to 'startWith' (did you mean 'startsWith'?) at column 29"},
		{"misspelt macro", `event.orders.exist(o, o.status == "CM")`,
			"undeclared reference to 'exist' (did you mean 'exists'?)"},
		{"wrong argument type", `event.message_type.startsWith(1)`,
			"found no matching overload for 'startsWith' applied to 'string.(int)'"},
		{"misspelt variable", `evnt.message_type == "ADT"`,
			"undeclared reference to 'evnt' (did you mean 'event'?) at column 1"},
		{"unknown variable", `msg.type == "ADT"`, "undeclared reference to 'msg' at column 1"},
		{"variable out of scope", `event.orders.all(o, o.status == "CM") && event.observations.exists(x, o.status == "F")`,
			"undeclared reference to 'o' at column 71"},
		{"syntax", `event.message_type == "ADT" &&`, "Syntax error: mismatched input '<EOF>' at column 31"},
		{"single =", `event.message_type = "ADT"`, "Syntax error: token recognition error at: '= ' at column 20"},
		{"second line", "event.message_type == \"ADT\" &&\n  event.trigger_evnt == \"A01\"",
			"undefined field 'trigger_evnt' (did you mean 'trigger_event'?) at line 2, column 8"},
		{"empty", "  ", "route condition is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.expr)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile: %v, want a *CompileError", err)
			}
			first, _, _ := strings.Cut(err.Error(), "\n")
			if !strings.Contains(first, tc.want) {
				t.Errorf("first line\n %q\nwant it to contain\n %q", first, tc.want)
			}
			for _, internal := range []string{"_==_", "@in", "<input>", "in container", "expecting {"} {
				if strings.Contains(err.Error(), internal) {
					t.Errorf("error shows CEL's internals (%q): %q", internal, err)
				}
			}
		})
	}
}

// TestCompileErrorText pins the whole text: one line per problem, then the
// condition's line and a caret, on " | " lines that config's one-line
// report drops.
func TestCompileErrorText(t *testing.T) {
	_, err := Compile(`event.messag_type == "ORM" || event.orders.exist(o, o.status == "CM")`)
	want := `undefined field 'messag_type' (did you mean 'message_type'?) at column 6
 | event.messag_type == "ORM" || event.orders.exist(o, o.status == "CM")
 | .....^
undeclared reference to 'exist' (did you mean 'exists'?) at column 49
 | event.messag_type == "ORM" || event.orders.exist(o, o.status == "CM")
 | ................................................^`
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
	var ce *CompileError
	if !errors.As(err, &ce) || len(ce.Problems) != 2 || ce.Problems[1] != (Problem{Line: 1, Column: 49, Message: "undeclared reference to 'exist' (did you mean 'exists'?)"}) {
		t.Errorf("problems %+v", ce)
	}
}

// TestConditions evaluates valid conditions on fixtures: the expressions
// the routing guide documents, and what each kind of field and list
// operation does, so the typed `event` reads as the guide says.
func TestConditions(t *testing.T) {
	withEnc := order("ORM", "O01")
	withEnc.Observations = []avro.Observation{{OrderIndex: 0, Status: "F", Value: "x"}}
	withEnc.Orders[0].ResultStatus = "F"
	noEnc := result("lab-results", "P")
	noEnc.Patient.Sex = ""
	tests := []struct {
		expr string
		ev   *avro.ClinicalEvent
		want bool
	}{
		{`event.event_type == "order"`, withEnc, true},
		{`event.message_type == "ORM" && event.trigger_event == "O01"`, withEnc, true},
		{`event.message_type in ["ORM", "OML"]`, withEnc, true},
		{`event.message_type in ["ORM", "OML"]`, noEnc, false},
		{`event.message_type.startsWith("OR")`, noEnc, true},
		{`event.patient.identifiers[0].assigning_authority == "HOSP"`, withEnc, true},
		{`event.patient.identifiers.exists(i, i.type_code == "MR" && i.value != "")`, withEnc, true},
		{`event.patient.given_names[0] == "Ada"`, withEnc, true},
		{`"Ada" in event.patient.given_names`, withEnc, true},
		{`"Grace" in event.patient.given_names`, withEnc, false},
		{`event.orders[0].result_status == "F"`, withEnc, true},
		{`"F" in event.orders.map(o, o.result_status)`, withEnc, true},
		{`event.orders.exists_one(o, o.result_status == "P")`, noEnc, true},
		{`event.observations.exists(o, o.status == "F")`, withEnc, true},
		{`event.observations.exists(o, o.status == "F")`, noEnc, false},
		{`event.observations.all(o, o.status == "P")`, noEnc, true},
		{`size(event.orders) > 0 && event.orders.all(o, o.result_status == "F")`, noEnc, false},
		{`event.orders.all(o, o.result_status == "F")`, adt("A01"), true}, // all() of nothing
		{`size(event.orders) == 0`, adt("A01"), true},
		{`event.orders.size() == 1`, withEnc, true},
		{`event.observations[0].order_index == 0`, withEnc, true},
		{`event.observations.exists(o, o.order_index >= 0 && o.order_index < size(event.orders))`, noEnc, true},
		{`event.provenance.source_interface == "lab-results"`, noEnc, true},
		{`event.provenance.ingest_time > timestamp("2024-01-01T00:00:00Z")`, withEnc, true},
		{`event.provenance.ingest_time.getFullYear() == 2024`, withEnc, true},
		{`size(event.patient.prior_identifiers) == 0`, withEnc, true},
		// has() on a string or list: true when it is not empty.
		{`has(event.patient.sex)`, withEnc, true},
		{`has(event.patient.sex)`, noEnc, false},
		{`has(event.orders)`, adt("A01"), false},
		// An event without an encounter: null, and its fields read as "".
		{`event.encounter == null`, noEnc, true},
		{`event.encounter == null`, withEnc, false},
		{`event.encounter != null`, withEnc, true},
		{`has(event.encounter)`, noEnc, false},
		{`has(event.encounter)`, withEnc, true},
		{`event.encounter != null && event.encounter.patient_class == "I"`, withEnc, true},
		{`event.encounter != null && event.encounter.patient_class == "I"`, noEnc, false},
		{`event.encounter.patient_class == "I"`, withEnc, true},
		{`event.encounter.patient_class == "I"`, noEnc, false},
		{`event.encounter.patient_class == ""`, noEnc, true},
		{`event.encounter.patient_class != "I"`, noEnc, true},
		{`has(event.encounter.patient_class)`, noEnc, false},
		{`event.encounter.point_of_care.startsWith("WARD")`, noEnc, false},
		{`event.encounter.point_of_care.startsWith("WARD")`, withEnc, true},
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
			// The stage's own activation gives the same answer.
			out, _, err = prg.Eval(eventActivation{tc.ev})
			if err != nil || out != types.Bool(tc.want) {
				t.Errorf("eventActivation: = %v, %v; want %v", out, err, tc.want)
			}
		})
	}
}

// TestErrorClass: what can still fail at run time once conditions are
// type-checked, and that the class kept of it quotes nothing of the event.
func TestErrorClass(t *testing.T) {
	ev := result("lab-results", "F")
	ev.Observations[0].Value = "Lovelace"
	for expr, want := range map[string]string{
		`event.orders[5].result_status == "F"`:                                  "index out of bounds",
		`int(event.observations[0].value) > 100`:                                "type conversion error",
		`event.observations[0].order_index / 0 == 1`:                            "division by zero",
		`event.patient.given_names[3] == "Ada"`:                                 "index out of bounds",
		`timestamp(event.observations[0].value) < event.provenance.ingest_time`: "invalid RFC timestamp",
		`int(double(size(event.orders)) * 1e30) > 0`:                            "integer overflow",
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
		if strings.ContainsAny(got, ":\"0123456789") || got == "" {
			t.Errorf("%s: class %q should be the message before its first colon, without values", expr, got)
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s: class %q, want it to contain %q", expr, got, want)
		}
	}
}

// TestErrorClassText: values cel-go writes into its messages, after a
// colon, in quotes or as numbers, are left out of the class.
func TestErrorClassText(t *testing.T) {
	for msg, want := range map[string]string{
		"index out of bounds: 5":                          "index out of bounds",
		"operation cancelled: actual cost limit exceeded": "actual cost limit exceeded",
		`invalid RFC 3339 timestamp "MRN001"`:             "invalid RFC timestamp",
		"range error converting 1e+20 to int":             "range error converting to int",
		"type conversion error from 'string' to 'int'":    "type conversion error from 'string' to 'int'",
		"12345": "evaluation error",
	} {
		if got := errorClass(errors.New(msg)); got != want {
			t.Errorf("errorClass(%q) = %q, want %q", msg, got, want)
		}
	}
}
