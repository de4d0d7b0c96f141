// Package codemap reads code maps: versioned tables from a sender's local
// codes (a lab's GLU in its own system L) to a standard coding system
// (LOINC 2345-7, system LN), kept as CSV files beside the configuration
// and applied by normalise to coded fields (docs/codes.md).
//
// A map file is CSV with a header row naming its columns, in any order:
//
//	local_system,local_code,code,display,system
//	L,GLU,2345-7,Glucose [Mass/volume] in Serum or Plasma,LN
//
// local_code, code and system are required; local_system and display may
// be left out, as columns or as values. A row without a local_system maps
// its local code from any system the map applies to. Lines that start
// with # are comments; blank lines are skipped. Every mistake names the
// file and line: a row with the wrong number of columns, an empty
// local_code, code or system, a local code written twice.
package codemap

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Coded fields a map can apply to.
const (
	FieldOBX3 = "OBX-3" // observation identifier (Observation.Code)
	FieldOBX6 = "OBX-6" // units (Observation.Units)
	FieldOBR4 = "OBR-4" // universal service identifier (Order.ServiceCode)
	FieldAL13 = "AL1-3" // allergen (Allergy.Code)
)

// Fields returns the coded fields a map can apply to.
func Fields() []string { return []string{FieldOBX3, FieldOBX6, FieldOBR4, FieldAL13} }

// Columns of a map file.
const (
	ColLocalSystem = "local_system"
	ColLocalCode   = "local_code"
	ColCode        = "code"
	ColDisplay     = "display"
	ColSystem      = "system"
)

var (
	columns  = []string{ColLocalSystem, ColLocalCode, ColCode, ColDisplay, ColSystem}
	required = []string{ColLocalCode, ColCode, ColSystem}
)

// MaxFileSize bounds a map file: a code map of every LOINC code is about
// 10 MiB; anything far larger is not a code map.
const MaxFileSize = 64 << 20

// Entry is one row: a local code and the standard code it stands for.
type Entry struct {
	LocalSystem string // as written; "" matches any system the map applies to
	LocalCode   string
	Code        string // the standard code, e.g. 2345-7
	Display     string // its display text; "" keeps the sender's text
	System      string // the standard system, e.g. LN, SCT, UCUM
	Line        int    // where the row is in the file
}

// Map is one loaded code map. It is safe for concurrent use.
type Map struct {
	// Name and Version are the configuration's: what exceptions and
	// events record as the map a code was read against.
	Name    string
	Version string
	// File is the file the map was read from.
	File    string
	entries map[key]Entry
	systems []string // the standard systems of the entries, upper case, sorted
}

type key struct{ system, code string }

// RowError is one mistake in a map file.
type RowError struct {
	File string
	Line int // from 1; 0 when the file as a whole is wrong
	Msg  string
}

func (e *RowError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Errors is every mistake found in one map file, in file order.
type Errors []*RowError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads the map file at path. A file that cannot be read is a
// RowError at line 0; a file with mistakes is Errors, all of them.
func Load(path, name, version string) (*Map, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("code map file: %v", errors.Unwrap(err))}}
	}
	if !fi.Mode().IsRegular() {
		return nil, Errors{{File: path, Msg: "code map file is not a regular file"}}
	}
	if fi.Size() > MaxFileSize {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("code map file is %d bytes, more than the %d a code map may be", fi.Size(), MaxFileSize)}}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("code map file: %v", errors.Unwrap(err))}}
	}
	defer f.Close()
	return Parse(f, path, name, version)
}

// Parse reads a map file from r; file names it in errors.
func Parse(r io.Reader, file, name, version string) (*Map, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // counted below, so every bad row is reported
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	m := &Map{Name: name, Version: version, File: file, entries: map[key]Entry{}}
	var errs Errors
	bad := func(line int, format string, args ...any) {
		errs = append(errs, &RowError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	var idx map[string]int // column name → position, from the header
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad(pe.Line, "%v", pe.Err)
			} else {
				bad(0, "read: %v", err)
			}
			return nil, errs // the reader cannot say where the next row starts
		}
		line, _ := cr.FieldPos(0)
		if idx == nil {
			if idx = header(rec, line, bad); idx == nil {
				return nil, errs
			}
			continue
		}
		if len(rec) != len(idx) {
			bad(line, "%d columns, but the header names %d (%s)", len(rec), len(idx), strings.Join(headerNames(idx), ","))
			continue
		}
		get := func(col string) string {
			if i, ok := idx[col]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		e := Entry{LocalSystem: get(ColLocalSystem), LocalCode: get(ColLocalCode), Code: get(ColCode),
			Display: get(ColDisplay), System: get(ColSystem), Line: line}
		switch {
		case e.LocalCode == "":
			bad(line, "local_code is empty")
			continue
		case e.Code == "":
			bad(line, "code is empty: give the standard code local code %q stands for, or remove the row", e.LocalCode)
			continue
		case e.System == "":
			bad(line, "system is empty: give the standard code's system (LN for LOINC, SCT for SNOMED CT, UCUM, HL7nnnn)")
			continue
		}
		k := key{strings.ToUpper(e.LocalSystem), e.LocalCode}
		if first, dup := m.entries[k]; dup {
			bad(line, "local code %q%s is already mapped at line %d", e.LocalCode, inSystem(e.LocalSystem), first.Line)
			continue
		}
		m.entries[k] = e
		if s := strings.ToUpper(e.System); !slices.Contains(m.systems, s) {
			m.systems = append(m.systems, s)
		}
	}
	if idx == nil {
		bad(0, "empty: a code map needs a header row (%s) and a row per local code", strings.Join(columns, ","))
	}
	if len(errs) > 0 {
		return nil, errs
	}
	slices.Sort(m.systems)
	return m, nil
}

// header reads the header row into column positions; nil when it is
// wrong (reported through bad).
func header(rec []string, line int, bad func(int, string, ...any)) map[string]int {
	idx := map[string]int{}
	ok := true
	for i, c := range rec {
		c = strings.ToLower(strings.TrimSpace(c))
		if !slices.Contains(columns, c) {
			bad(line, "unknown column %q in the header (the columns are %s)", c, strings.Join(columns, ", "))
			ok = false
			continue
		}
		if _, dup := idx[c]; dup {
			bad(line, "column %q is named twice in the header", c)
			ok = false
			continue
		}
		idx[c] = i
	}
	for _, c := range required {
		if _, has := idx[c]; !has {
			bad(line, "the header has no %s column (a code map needs %s; the first row is its header)", c, strings.Join(required, ", "))
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return idx
}

func headerNames(idx map[string]int) []string {
	out := make([]string, len(idx))
	for c, i := range idx {
		out[i] = c
	}
	return out
}

func inSystem(s string) string {
	if s == "" {
		return " (any system)"
	}
	return " of system " + s
}

// Lookup returns the entry for localCode in localSystem: the row written
// for that system, else the row with no local_system. Systems compare
// without regard to case; codes exactly.
func (m *Map) Lookup(localSystem, localCode string) (Entry, bool) {
	if e, ok := m.entries[key{strings.ToUpper(localSystem), localCode}]; ok {
		return e, true
	}
	e, ok := m.entries[key{"", localCode}]
	return e, ok
}

// Len is the number of rows.
func (m *Map) Len() int { return len(m.entries) }

// Systems returns the standard systems the map codes into (LN, UCUM, ...),
// upper case: a code already in one of them is not looked up.
func (m *Map) Systems() []string { return slices.Clone(m.systems) }

// IsTarget reports whether system is one the map codes into.
func (m *Map) IsTarget(system string) bool {
	return slices.Contains(m.systems, strings.ToUpper(system))
}

// ID is name@version, as exceptions and events record a map.
func (m *Map) ID() string { return m.Name + "@" + m.Version }
