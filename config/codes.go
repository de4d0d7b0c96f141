// This file holds the `codes:` key: the code maps normalise applies to
// coded fields (docs/codes.md). Each map's CSV file is read when the
// configuration is, so `careflow check` reports its mistakes with the CSV
// file and line.

package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/careflow-health/careflow/stages/codemap"
)

// CodeMap is one `codes:` entry: a versioned table of local codes to a
// standard system, and where it applies.
type CodeMap struct {
	Name string `yaml:"name"`
	// File is the CSV table (stages/codemap), relative to the
	// configuration file's directory.
	File string `yaml:"file"`
	// Version is recorded on every exception and event the map touches,
	// so a code mapped or refused can be traced to the table that did it.
	Version string `yaml:"version"`
	// Interfaces are the inbound interfaces it applies to; empty: all.
	Interfaces []string `yaml:"interfaces"`
	// Fields are the coded fields it applies to: OBX-3, OBX-6, OBR-4, AL1-3.
	Fields []string `yaml:"fields"`
	// Systems are the local coding systems it applies to (L, 99LAB);
	// empty: any code whose system is not one the map codes into.
	Systems []string `yaml:"systems"`
	// Unmapped is what becomes of a code the map does not know:
	// UnmappedPass (the default) or UnmappedHold. It is an exception
	// either way.
	Unmapped string `yaml:"unmapped"`

	// Table is the file's rows, read by Load.
	Table *codemap.Map `yaml:"-"`
}

// What becomes of a code no map knows.
const (
	UnmappedPass = "pass" // delivered as sent, beside the exception
	UnmappedHold = "hold" // held for review
)

// Binding is the map as normalise applies it.
func (m CodeMap) Binding() codemap.Binding {
	return codemap.Binding{Map: m.Table, Interfaces: m.Interfaces, Fields: m.Fields, Systems: m.Systems, Hold: m.Unmapped == UnmappedHold}
}

// validateCodes checks every code map and reads its file.
func (d *decoder) validateCodes(c *Config) {
	var inbound []string
	for _, in := range c.Inbound {
		inbound = append(inbound, in.Name)
	}
	names := map[string]string{}
	for i := range c.Codes {
		cm := &c.Codes[i]
		p := fmt.Sprintf("codes[%d]", i)
		d.checkName(p, cm.Name, names)
		if strings.TrimSpace(cm.Version) == "" {
			d.problemAt(p+".version", "version is required: it is recorded on every code the map maps or refuses (e.g. 2024-06 or 3)")
		}
		for j, in := range cm.Interfaces {
			if !slices.Contains(inbound, in) {
				d.problemAt(fmt.Sprintf("%s.interfaces[%d]", p, j), fmt.Sprintf("unknown inbound interface %q%s", in, suggest(in, inbound)))
			}
		}
		if len(cm.Fields) == 0 {
			d.problemAt(p+".fields", fmt.Sprintf("say which coded fields the map applies to (%s)", strings.Join(codemap.Fields(), ", ")))
		}
		for j, f := range cm.Fields {
			if !slices.Contains(codemap.Fields(), f) {
				d.problemAt(fmt.Sprintf("%s.fields[%d]", p, j), fmt.Sprintf("%q is not a coded field a map can apply to%s (known: %s)",
					f, suggest(f, codemap.Fields()), strings.Join(codemap.Fields(), ", ")))
			}
		}
		for j, s := range cm.Systems {
			if strings.TrimSpace(s) == "" {
				d.problemAt(fmt.Sprintf("%s.systems[%d]", p, j), "empty coding system")
			}
		}
		if cm.Unmapped != UnmappedPass && cm.Unmapped != UnmappedHold {
			d.problemAt(p+".unmapped", fmt.Sprintf("want pass or hold, got %q%s", cm.Unmapped, suggest(cm.Unmapped, []string{UnmappedPass, UnmappedHold})))
		}
		d.loadCodeMap(p, cm)
	}
}

// loadCodeMap reads cm's file into cm.Table, reporting each mistake in it
// at its CSV file and line.
func (d *decoder) loadCodeMap(p string, cm *CodeMap) {
	if strings.TrimSpace(cm.File) == "" {
		d.problemAt(p+".file", "file is required: the CSV table of the map, relative to this file")
		return
	}
	path := cm.File
	if !filepath.IsAbs(path) {
		path = filepath.Join(d.dir, path)
	}
	t, err := codemap.Load(path, cm.Name, cm.Version)
	var errs codemap.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			if e.Line == 0 {
				d.problemAt(p+".file", fmt.Sprintf("%s: %s", e.File, e.Msg))
				continue
			}
			d.problems = append(d.problems, Problem{Pos: Pos{File: e.File, Line: e.Line}, Key: p + ".file", Msg: e.Msg})
		}
		return
	}
	if err != nil {
		d.problemAt(p+".file", err.Error())
		return
	}
	cm.File, cm.Table = path, t
}
