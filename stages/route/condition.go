// This file compiles route conditions: CEL expressions over one variable,
// `event`, that must return bool. `careflow check` uses Compile too, so its
// errors are written for the person editing the routes file.

package route

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
)

// Variable is the name of the CEL variable holding the event.
const Variable = "event"

// CostLimit bounds the work one condition may do on one event, so that a
// quadratic expression over a large ORU cannot stall the partition. A
// typical condition costs under 100; the limit leaves room for
// comprehensions over a few hundred observations.
const CostLimit = 100_000

// interruptEvery is how many comprehension iterations run between checks
// of the context, so a cancelled stage stops evaluating promptly.
const interruptEvery = 100

// env is the one CEL environment every condition compiles in. Building it
// is costly and it is safe for concurrent use.
var env = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(eventEnvOptions()...)
})

// Compile type-checks expr against the declared type of `event` (see
// event.go) and returns a program ready to evaluate against Activation.
// The error is a *CompileError: an unknown field, a comparison of a string
// with a number, an unknown function, a syntax error, or a result that is
// not bool (`event.event_type` alone must be compared:
// `event.event_type == "admit"`).
func Compile(expr string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, &CompileError{Expr: expr, Problems: []Problem{{Message: "route condition is empty"}}}
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	src := common.NewTextSource(expr)
	parsed, iss := e.ParseSource(src)
	if iss.Err() != nil {
		return nil, newCompileError(e, src, nil, iss.Errors())
	}
	ast, iss := e.Check(parsed)
	if iss.Err() != nil {
		return nil, newCompileError(e, src, parsed, iss.Errors())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, &CompileError{Expr: expr, Problems: []Problem{{Message: notBool(t)}}}
	}
	prg, err := e.Program(ast,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(interruptEvery),
	)
	if err != nil {
		return nil, fmt.Errorf("route condition: %w", err)
	}
	return prg, nil
}

// notBool says what to do with a condition whose result has type t.
func notBool(t *cel.Type) string {
	hint := "compare it, e.g. `event.message_type == \"ADT\"`"
	switch t.Kind() {
	case cel.ListKind:
		hint = "test it, e.g. `size(event.orders) > 0` or `event.orders.exists(o, o.status == \"CM\")`"
	case cel.StructKind:
		hint = "test a field of it, or whether it is present, e.g. `has(event.encounter)`"
	}
	return fmt.Sprintf("route condition must return bool, not %s: %s", t, hint)
}

// errorClass reduces a CEL evaluation error to its class ("index out of
// bounds", "actual cost limit exceeded", ...), for outcomes and logs, which
// must not hold patient data: cel-go puts the offending value after a
// colon ("index out of bounds: 5"), in double quotes ("invalid RFC 3339
// timestamp \"...\"") or as a number ("range error converting 1e+30 to
// int"), so the class is the text before the first colon or quote, less
// any word with a digit in it.
func errorClass(err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "operation cancelled: "); ok {
		// "operation cancelled: actual cost limit exceeded": the reason
		// is fixed text and the part worth reading.
		msg = rest
	}
	if i := strings.IndexAny(msg, ":\""); i >= 0 {
		msg = msg[:i]
	}
	words := strings.Fields(msg)
	words = slices.DeleteFunc(words, func(w string) bool { return strings.ContainsAny(w, "0123456789") })
	msg = strings.Join(words, " ")
	if len(msg) > 80 {
		msg = msg[:80]
	}
	if msg == "" {
		return "evaluation error"
	}
	return msg
}
