package codemap_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/stages/codemap"
)

func load(t *testing.T, file string) (*codemap.Map, error) {
	t.Helper()
	return codemap.Load(filepath.Join("testdata", file), "lab-loinc", "3")
}

func TestLookup(t *testing.T) {
	m, err := load(t, "good.csv")
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 5 || m.ID() != "lab-loinc@3" {
		t.Fatalf("%d rows, id %s", m.Len(), m.ID())
	}
	tests := []struct {
		system, code string
		want         string // code^system, "" for none
		line         int
	}{
		{"L", "GLU", "2345-7^LN", 3},
		{"l", "GLU", "2345-7^LN", 3},     // systems ignore case
		{"99LAB", "GLU", "2339-0^LN", 8}, // the same local code in another system
		{"L", "NA", "2951-2^LN", 4},      // values are trimmed
		{"L", "K", "2823-3^LN", 7},       // a row for any system
		{"OTHER", "K", "2823-3^LN", 7},   // ... is any system
		{"L", "HB,A", "718-7^LN", 9},     // quoted fields
		{"L", "glu", "", 0},              // codes compare exactly
		{"OTHER", "GLU", "", 0},          // GLU is only mapped in L and 99LAB
		{"L", "CRP", "", 0},
	}
	for _, tt := range tests {
		e, ok := m.Lookup(tt.system, tt.code)
		got := ""
		if ok {
			got = e.Code + "^" + e.System
		}
		if got != tt.want || ok && e.Line != tt.line {
			t.Errorf("Lookup(%q, %q) = %q line %d, want %q line %d", tt.system, tt.code, got, e.Line, tt.want, tt.line)
		}
	}
	if e, _ := m.Lookup("L", "HB,A"); e.Display != "" {
		t.Errorf("display %q, want empty (keeps the sender's text)", e.Display)
	}
	if !m.IsTarget("ln") || m.IsTarget("L") {
		t.Errorf("targets %v", m.Systems())
	}
}

func TestColumnsInAnyOrder(t *testing.T) {
	m, err := load(t, "reordered.csv")
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m.Lookup("ANY", "GLU"); !ok || e.Code != "2345-7" || e.System != "LN" || e.Line != 2 {
		t.Errorf("Lookup = %+v %v", e, ok)
	}
}

// Every mistake names the file and the line, all of them at once.
func TestFileErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string // "line: text" of each error, in order
	}{
		{"duplicate.csv", []string{`4: local code "GLU" of system l is already mapped at line 2`}},
		{"columns.csv", []string{"3: 4 columns, but the header names 5", "5: 6 columns, but the header names 5"}},
		{"empty_code.csv", []string{"2: code is empty", "3: local_code is empty", "4: system is empty"}},
		{"bad_header.csv", []string{`1: unknown column "local"`, "1: the header has no local_code column"}},
		{"no_header.csv", []string{"0: empty: a code map needs a header row"}},
		{"quote.csv", []string{`2: extraneous or missing " in quoted-field`}},
		{"missing.csv", []string{"0: code map file: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := load(t, tt.file)
			var errs codemap.Errors
			if !errors.As(err, &errs) || m != nil {
				t.Fatalf("Load = %v, %v; want Errors", m, err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				if e.File != filepath.Join("testdata", tt.file) {
					t.Errorf("error %d names file %q", i, e.File)
				}
				line, text, _ := strings.Cut(tt.want[i], ": ")
				if got := strings.TrimPrefix(e.Error(), e.File+":"); !strings.HasPrefix(got, line+": "+text) && !(line == "0" && strings.HasPrefix(got, " "+text)) {
					t.Errorf("error %d = %q, want line %s: %s", i, e.Error(), line, text)
				}
			}
		})
	}
}

func TestBinding(t *testing.T) {
	m, err := load(t, "good.csv")
	if err != nil {
		t.Fatal(err)
	}
	any := &codemap.Binding{Map: m, Fields: []string{codemap.FieldOBX3}}
	local := &codemap.Binding{Map: m, Fields: []string{codemap.FieldOBX3, codemap.FieldOBR4}, Interfaces: []string{"lab-results"}, Systems: []string{"l"}}
	tests := []struct {
		b             *codemap.Binding
		iface, field  string
		system        string
		applies, take bool
	}{
		{any, "ehr", codemap.FieldOBX3, "L", true, true},
		{any, "ehr", codemap.FieldOBX3, "", true, true},
		{any, "ehr", codemap.FieldOBX3, "LN", true, false}, // already the target's
		{any, "ehr", codemap.FieldOBX6, "L", false, true},
		{local, "lab-results", codemap.FieldOBR4, "L", true, true},
		{local, "ehr", codemap.FieldOBR4, "L", false, true},
		{local, "lab-results", codemap.FieldOBX3, "99LAB", true, false},
	}
	for i, tt := range tests {
		if got := tt.b.AppliesTo(tt.iface, tt.field); got != tt.applies {
			t.Errorf("%d: AppliesTo(%s, %s) = %v", i, tt.iface, tt.field, got)
		}
		if got := tt.b.Takes(tt.system); got != tt.take {
			t.Errorf("%d: Takes(%q) = %v", i, tt.system, got)
		}
	}
}
