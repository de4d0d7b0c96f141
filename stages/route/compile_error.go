// This file turns CEL's compile issues into CompileError: one problem per
// issue, in words for the person editing the routes file, with the column
// and, for a misspelt field or function, the name they probably meant.

package route

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"

	"github.com/careflow-health/careflow/internal/levenshtein"
)

// CompileError is a route condition that does not compile.
type CompileError struct {
	Expr     string
	Problems []Problem
}

// Problem is one mistake in a condition.
type Problem struct {
	// Line and Column locate the mistake in the condition, from 1; both
	// are 0 when it concerns the condition as a whole (its result type).
	Line, Column int
	// Message says what is wrong, e.g. "undefined field 'messag_type'
	// (did you mean 'message_type'?)".
	Message string
}

// Error gives each problem on a line of its own, "<message> at column C"
// ("at line L, column C" when the condition spans lines), followed by the
// condition's line and a caret under the column on lines that begin with
// " | ", which a one-line report (config's Problems) leaves out.
func (e *CompileError) Error() string {
	var b strings.Builder
	lines := strings.Split(e.Expr, "\n")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Message)
		if p.Line < 1 || p.Line > len(lines) {
			continue
		}
		if len(lines) > 1 {
			fmt.Fprintf(&b, " at line %d, column %d", p.Line, p.Column)
		} else {
			fmt.Fprintf(&b, " at column %d", p.Column)
		}
		src := strings.ReplaceAll(lines[p.Line-1], "\t", " ")
		b.WriteString("\n | " + src + "\n | ")
		b.WriteString(strings.Repeat(".", min(max(p.Column-1, 0), len([]rune(src)))) + "^")
	}
	return b.String()
}

// newCompileError describes CEL's issues with the condition in src.
// parsed, when the condition parsed, lets a misspelt field be matched
// against the fields of the record it was looked up in.
func newCompileError(e *cel.Env, src common.Source, parsed *cel.Ast, issues []*cel.Error) *CompileError {
	ce := &CompileError{Expr: src.Content()}
	// A misspelt macro (`exist(o, ...)`) is an unknown function whose
	// variable is then unknown too; only the first is worth reading.
	followOn := map[string]bool{}
	for _, is := range issues {
		p := Problem{Message: plainMessage(is.Message)}
		if loc := is.Location; loc != nil && loc.Line() > 0 {
			// CEL counts columns from 0, and says -1 when it has none.
			p.Line, p.Column = loc.Line(), max(loc.Column()+1, 1)
		}
		if name, ok := quoted(is.Message, "undefined field '"); ok {
			p.Message += didYouMean(name, fieldCandidates(parsed, is.ExprID))
		} else if name, ok := quoted(is.Message, "undeclared reference to '"); ok {
			if followOn[name] {
				continue
			}
			for _, arg := range callIdents(parsed, is.ExprID) {
				followOn[arg] = true
			}
			p.Message += didYouMean(name, referenceCandidates(e))
		}
		ce.Problems = append(ce.Problems, p)
	}
	return ce
}

// node finds the expression with id in parsed.
func node(parsed *cel.Ast, id int64) (ast.NavigableExpr, bool) {
	if parsed == nil {
		return nil, false
	}
	nodes := ast.MatchDescendants(ast.NavigateAST(parsed.NativeRep()), func(e ast.NavigableExpr) bool { return e.ID() == id })
	if len(nodes) != 1 {
		return nil, false
	}
	return nodes[0], true
}

// callIdents lists the arguments that are bare names of the call with id.
func callIdents(parsed *cel.Ast, id int64) []string {
	n, ok := node(parsed, id)
	if !ok || n.Kind() != ast.CallKind {
		return nil
	}
	var names []string
	for _, a := range n.AsCall().Args() {
		if a.Kind() == ast.IdentKind {
			names = append(names, a.AsIdent())
		}
	}
	return names
}

// operators names CEL's internal function names for operators as written.
var operators = strings.NewReplacer(
	"'_==_'", "'=='", "'_!=_'", "'!='", "'_<_'", "'<'", "'_<=_'", "'<='",
	"'_>_'", "'>'", "'_>=_'", "'>='", "'_&&_'", "'&&'", "'_||_'", "'||'",
	"'_+_'", "'+'", "'_-_'", "'-'", "'_*_'", "'*'", "'_/_'", "'/'",
	"'_%_'", "'%'", "'!_'", "'!'", "'-_'", "'-'", "'@in'", "'in'",
	"'_[_]'", "'[]'", "'_?_:_'", "'?:'",
	" (in container '')", "",
)

// plainMessage is CEL's message with operators as written and without
// the parser's list of every token it could have accepted.
func plainMessage(msg string) string {
	if before, _, ok := strings.Cut(msg, " expecting {"); ok {
		msg = before
	}
	return operators.Replace(msg)
}

// quoted returns the name in msg after prefix and up to the next quote.
func quoted(msg, prefix string) (string, bool) {
	_, rest, ok := strings.Cut(msg, prefix)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "'")
	return name, ok
}

// fieldCandidates lists the fields of the record in which the field
// selected by expression id was looked up; every record's fields when
// that record cannot be told from the parsed condition.
func fieldCandidates(parsed *cel.Ast, id int64) []string {
	if n, ok := node(parsed, id); ok && n.Kind() == ast.SelectKind {
		if t := goType(n.Children()[0]); t != nil {
			return fieldNames(t)
		}
	}
	var all []string
	for _, t := range records {
		all = append(all, fieldNames(t)...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// goType is the Go struct type expression e has, when it is `event` or a
// path from it (fields, list indexes, a comprehension's variable over a
// list); nil otherwise.
func goType(e ast.NavigableExpr) reflect.Type {
	var t reflect.Type
	switch e.Kind() {
	case ast.IdentKind:
		t = identType(e)
	case ast.SelectKind:
		if rt := goType(e.Children()[0]); rt != nil {
			if f, ok := field(rt, e.AsSelect().FieldName()); ok {
				t = f.Type
			}
		}
	case ast.CallKind:
		if c := e.AsCall(); c.FunctionName() == "_[_]" && !c.IsMemberFunction() {
			t = elem(goType(e.Children()[0]))
		}
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Slice && t.Kind() != reflect.Struct {
		return nil
	}
	return t
}

// identType is the type of a name: a comprehension's variable over a list
// of records, or `event`.
func identType(e ast.NavigableExpr) reflect.Type {
	name := e.AsIdent()
	for p, ok := e.Parent(); ok; p, ok = p.Parent() {
		if p.Kind() != ast.ComprehensionKind {
			continue
		}
		c := p.AsComprehension()
		var rng ast.NavigableExpr
		for _, ch := range p.Children() {
			if ch.ID() == c.IterRange().ID() {
				rng = ch
			}
		}
		switch {
		case c.HasIterVar2() && name == c.IterVar2(), !c.HasIterVar2() && name == c.IterVar():
			if rng == nil {
				return nil
			}
			return elem(goType(rng))
		case name == c.IterVar(), name == c.AccuVar():
			return nil
		}
	}
	if name == Variable {
		return eventType
	}
	return nil
}

func elem(t reflect.Type) reflect.Type {
	if t == nil || t.Kind() != reflect.Slice {
		return nil
	}
	return t.Elem()
}

// referenceCandidates lists the names a condition can refer to: the
// variable, and the functions and macros of the environment.
func referenceCandidates(e *cel.Env) []string {
	names := []string{Variable}
	for _, m := range e.Macros() {
		names = append(names, m.Function())
	}
	for name := range e.Functions() {
		if isIdent(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names[1:])
	return slices.Compact(names)
}

func isIdent(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// didYouMean returns " (did you mean 'x'?)" for the candidate closest to
// name, or "" when none is close: within a third of name's length in
// edits once case and underscores are ignored (so MessageType finds
// message_type), or containing it (interface finds source_interface).
func didYouMean(name string, candidates []string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	n := norm(name)
	limit := max(1, len(n)/3)
	best, bestD := "", limit+1
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := levenshtein.Distance(n, norm(c))
		if d > limit && len(n) >= 4 && strings.Contains(norm(c), n) {
			d = limit
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean '%s'?)", best)
}
