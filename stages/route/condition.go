// This file compiles route conditions: CEL expressions over one variable,
// `event`, that must return bool. `careflow check` uses Compile too, so its
// errors are written for the person editing the routes file.
package route

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
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
	return cel.NewEnv(cel.Variable(Variable, cel.MapType(cel.StringType, cel.DynType)))
})

// Compile checks expr and returns a program ready to evaluate against
// Activation. An error carries CEL's message with line and column, or says
// that the expression does not return bool. Because event is a map of dyn,
// an expression whose type is only known at run time (such as
// `event.event_type`) is rejected: a condition must be visibly boolean
// (`event.event_type == "admit"`).
func Compile(expr string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("route condition is empty")
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("build CEL environment: %w", err)
	}
	ast, iss := e.Compile(expr)
	if err := iss.Err(); err != nil {
		// CEL's own text ("ERROR: <input>:1:7: undeclared reference to
		// 'evnt'" and a caret under the column) is what the reader needs.
		return nil, err
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("route condition must return bool, but returns %s (compare it, e.g. `== \"value\"`)", t)
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

// errorClass reduces a CEL evaluation error to its class ("no such key",
// "index out of range", ...): the text after the first colon can quote a
// value from the event, and outcomes and logs must not hold patient data.
func errorClass(err error) string {
	msg := err.Error()
	i := strings.IndexByte(msg, ':')
	if i >= 0 && msg[:i] == "operation cancelled" {
		// "operation cancelled: actual cost limit exceeded": the reason
		// is fixed text and the part worth reading.
		if j := strings.IndexByte(msg[i+1:], ':'); j >= 0 {
			i += 1 + j
		} else {
			i = -1
		}
	}
	if i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return strings.TrimSpace(msg)
}
