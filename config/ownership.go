// This file is the `ownership:` key, the source-of-truth matrix
// (docs/ownership.md): per domain and field, the inbound interfaces that
// own it and what becomes of an update from any other. The YAML keys are
// the field names of stages/ownership, so an unknown field is an unknown
// key, reported with the nearest name; this file checks the rest.

package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/careflow-health/careflow/stages/ownership"
)

// Ownership is the source-of-truth matrix. A field without a rule is
// governed by nobody: every update of it applies.
type Ownership struct {
	// Version names this edition of the matrix; outcomes cite it.
	// Required when any rule is given: change it with every change.
	Version      string         `yaml:"version"`
	Demographics Demographics   `yaml:"demographics"`
	NextOfKin    *OwnershipRule `yaml:"next_of_kin"`
	Allergies    *OwnershipRule `yaml:"allergies"`
	Orders       *OwnershipRule `yaml:"orders"`
	Results      *OwnershipRule `yaml:"results"`
	Appointments *OwnershipRule `yaml:"appointments"`
}

// Demographics holds the rules of the patient's demographic fields.
type Demographics struct {
	Name      *OwnershipRule `yaml:"name"`
	BirthDate *OwnershipRule `yaml:"birth_date"`
	Sex       *OwnershipRule `yaml:"sex"`
	Address   *OwnershipRule `yaml:"address"`
	Telecom   *OwnershipRule `yaml:"telecom"`
	GP        *OwnershipRule `yaml:"gp"`
}

// OwnershipRule is the ownership of one field: {owners: [ehr], others:
// strip, newer: true}.
type OwnershipRule struct {
	// Owners are inbound interface names.
	Owners []string `yaml:"owners"`
	// Others is accept, strip or review. Default: strip.
	Others string `yaml:"others"`
	// Newer applies an update only when it is newer than the last one
	// applied for the field.
	Newer bool `yaml:"newer"`
}

// Rules returns the rules given, keyed by ownership field name
// (demographics.address, results, ...).
func (o Ownership) Rules() map[string]OwnershipRule {
	out := map[string]OwnershipRule{}
	for f, r := range o.rulesByField() {
		if *r != nil {
			out[f] = **r
		}
	}
	return out
}

// rulesByField maps every ownership field to its place in o.
func (o *Ownership) rulesByField() map[string]**OwnershipRule {
	d := &o.Demographics
	return map[string]**OwnershipRule{
		ownership.Name: &d.Name, ownership.BirthDate: &d.BirthDate, ownership.Sex: &d.Sex,
		ownership.Address: &d.Address, ownership.Telecom: &d.Telecom, ownership.GP: &d.GP,
		ownership.NextOfKin: &o.NextOfKin, ownership.Allergies: &o.Allergies,
		ownership.Orders: &o.Orders, ownership.Results: &o.Results, ownership.Appointments: &o.Appointments,
	}
}

// Matrix builds the matrix the normalise stage applies; nil when no rule
// is given. Load has validated o, so an error here is careflow's own.
func (o Ownership) Matrix() (*ownership.Matrix, error) {
	rules := o.Rules()
	if len(rules) == 0 {
		return nil, nil
	}
	m := map[string]ownership.Rule{}
	for f, r := range rules {
		m[f] = ownership.Rule{Owners: r.Owners, Others: r.Others, Newer: r.Newer}
	}
	return ownership.New(o.Version, m)
}

// validateOwnership checks the matrix: a version when there are rules,
// owners that are inbound interfaces, and a known `others`.
func (d *decoder) validateOwnership(c *Config) {
	rules := c.Ownership.Rules()
	if len(rules) > 0 && strings.TrimSpace(c.Ownership.Version) == "" {
		d.problemAt("ownership.version", "the matrix needs a version (e.g. version: 1), changed with every change, so that outcomes say which edition decided")
	}
	var inbound []string
	for _, in := range c.Inbound {
		inbound = append(inbound, in.Name)
	}
	fields := ownership.Fields()
	slices.Sort(fields)
	for _, f := range fields {
		r, ok := rules[f]
		if !ok {
			continue
		}
		p := "ownership." + f
		if len(r.Owners) == 0 {
			d.problemAt(p+".owners", fmt.Sprintf("name the inbound interface(s) that own %s, e.g. owners: [ehr]", f))
		}
		seen := map[string]bool{}
		for i, o := range r.Owners {
			op := fmt.Sprintf("%s.owners[%d]", p, i)
			switch {
			case !slices.Contains(inbound, o):
				d.problemAt(op, fmt.Sprintf("no inbound interface is called %q%s; owners are inbound interface names", o, suggest(o, inbound)))
			case seen[o]:
				d.problemAt(op, fmt.Sprintf("%q is listed twice", o))
			}
			seen[o] = true
		}
		if r.Others != "" && !slices.Contains(ownership.Others(), r.Others) {
			d.problemAt(p+".others", fmt.Sprintf("want accept, strip or review, got %q%s", r.Others, suggest(r.Others, ownership.Others())))
		}
	}
}
