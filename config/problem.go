// This file holds how configuration mistakes are reported: each one names the
// file, the line and the key, so that an interface analyst can go straight to
// it, and all of them are reported at once rather than one per run.

package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/careflow-health/careflow/internal/levenshtein"
)

// Pos is a place in a configuration file. Line and Column start at 1; a zero
// Line means the mistake has no single place (the file as a whole).
type Pos struct {
	File   string
	Line   int
	Column int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Problem is one mistake in a configuration file, for example
//
//	careflow.yaml:12: routes[1].destination: unknown destination "labs" (did you mean "lab"?)
//
// Key is the path of the offending key: dotted field names, zero-based list
// indexes in brackets, quoted map keys in brackets (accept.required["ADT^*"]).
type Problem struct {
	Pos Pos
	Key string
	Msg string
}

func (p Problem) Error() string {
	if p.Key == "" {
		return fmt.Sprintf("%s: %s", p.Pos, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", p.Pos, p.Key, p.Msg)
}

// Problems is every mistake found in one file. It is the error Load and
// Parse return when the file is wrong; its message has one problem a line,
// in file order.
type Problems []Problem

func (ps Problems) Error() string {
	ps.sort()
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Pos.Line != ps[j].Pos.Line {
			return ps[i].Pos.Line < ps[j].Pos.Line
		}
		return ps[i].Pos.Column < ps[j].Pos.Column
	})
}

// suggest returns ` (did you mean "x"?)` when one of known is a likely typo
// of got, else "".
func suggest(got string, known []string) string {
	best, bestDist := "", len(got)/2+2
	for _, k := range known {
		if d := levenshtein.Distance(strings.ToLower(got), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	// A distance that is most of the word is not a typo but another word.
	if best == "" || bestDist > 3 || bestDist >= len(best) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
