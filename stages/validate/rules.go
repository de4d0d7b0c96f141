package validate

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// Rules are one inbound interface's conformance rules.
type Rules struct {
	// MessageTypes lists the accepted message types as "ADT^A01", "ADT^*"
	// (any trigger of ADT), "ADT" (the same) or "*". Empty accepts any.
	MessageTypes []string
	// Versions lists the accepted MSH-12 values ("2.3", "2.5.1"). Empty
	// accepts any.
	Versions []string
	// Required maps a message type pattern (as in MessageTypes) to the
	// segments and fields that must be present and non-empty in messages of
	// that type: "PID" (a segment), "PID-3" (a field), "PID-3.1" (a
	// component), "PV1-3.4.1" (a subcomponent), "OBR[2]-4" (an occurrence).
	Required map[string][]string
}

// typePattern is a parsed MessageTypes entry; "" or "*" matches anything.
type typePattern struct{ typ, trigger string }

func parseTypePattern(s string) (typePattern, error) {
	s = strings.TrimSpace(s)
	typ, trig, _ := strings.Cut(s, "^")
	if typ == "" || strings.Contains(trig, "^") {
		return typePattern{}, fmt.Errorf("message type pattern %q: want TYPE^TRIGGER, TYPE^* or *", s)
	}
	if typ == "*" && trig != "" && trig != "*" {
		return typePattern{}, fmt.Errorf("message type pattern %q: a trigger needs a message type", s)
	}
	return typePattern{typ: typ, trigger: trig}, nil
}

func (p typePattern) matchType(typ string) bool { return p.typ == "*" || p.typ == typ }

func (p typePattern) matchTrigger(trig string) bool {
	return p.trigger == "" || p.trigger == "*" || p.trigger == trig
}

func (p typePattern) match(typ, trig string) bool { return p.matchType(typ) && p.matchTrigger(trig) }

// requiredPath accepts "SEG", "SEG[n]" and those followed by
// "-F[r].C.S" with any tail of the field part left off.
var requiredPath = regexp.MustCompile(`^[A-Z][A-Z0-9]{2}(\[[1-9][0-9]*\])?(-[1-9][0-9]*(\[[1-9][0-9]*\])?(\.[1-9][0-9]*){0,2})?$`)

// requirement is the list of paths a message type pattern requires.
type requirement struct {
	pattern typePattern
	paths   []string
}

// compiled is Rules checked and made quick to apply.
type compiled struct {
	types    []typePattern
	versions []string
	required []requirement // in pattern order, so that "first missing" is stable
}

func compile(r Rules) (compiled, error) {
	var c compiled
	for _, s := range r.MessageTypes {
		p, err := parseTypePattern(s)
		if err != nil {
			return c, err
		}
		c.types = append(c.types, p)
	}
	c.versions = slices.Clone(r.Versions)
	patterns := make([]string, 0, len(r.Required))
	for k := range r.Required {
		patterns = append(patterns, k)
	}
	slices.Sort(patterns)
	for _, k := range patterns {
		p, err := parseTypePattern(k)
		if err != nil {
			return c, fmt.Errorf("required: %w", err)
		}
		for _, path := range r.Required[k] {
			if !requiredPath.MatchString(path) {
				return c, fmt.Errorf("required[%q]: path %q: want SEG, SEG-F, SEG-F.C or SEG-F.C.S", k, path)
			}
		}
		c.required = append(c.required, requirement{pattern: p, paths: slices.Clone(r.Required[k])})
	}
	return c, nil
}

// typeAllowed reports whether typ^trig is accepted and, if not, which part
// is at fault: "MSH-9.1" when no pattern names the type, "MSH-9.2" when the
// type is known but not the trigger.
func (c compiled) typeAllowed(typ, trig string) (ok bool, location string) {
	if len(c.types) == 0 {
		return true, ""
	}
	typeKnown := false
	for _, p := range c.types {
		if p.match(typ, trig) {
			return true, ""
		}
		typeKnown = typeKnown || p.matchType(typ)
	}
	if typeKnown {
		return false, "MSH-9.2"
	}
	return false, "MSH-9.1"
}

func (c compiled) versionAllowed(v string) bool {
	return len(c.versions) == 0 || slices.Contains(c.versions, v)
}

// missing returns every required path absent or empty in m, in rule order,
// each once.
func (c compiled) missing(m *hl7v2.Message, typ, trig string) []string {
	var out []string
	for _, r := range c.required {
		if !r.pattern.match(typ, trig) {
			continue
		}
		for _, p := range r.paths {
			if slices.Contains(out, p) || present(m, p) {
				continue
			}
			out = append(out, p)
		}
	}
	return out
}

// present reports whether path names a segment that exists or a value with
// content. A value made only of delimiters ("^^^") or HL7's explicit null
// ("") carries nothing a receiver can use, so it does not count.
func present(m *hl7v2.Message, path string) bool {
	if !strings.Contains(path, "-") {
		name, idx := path, 1
		if i := strings.IndexByte(path, '['); i > 0 {
			name = path[:i]
			fmt.Sscanf(path[i:], "[%d]", &idx)
		}
		return len(m.SegmentsNamed(name)) >= idx
	}
	return hasContent(m.GetRaw(path), m.Delimiters())
}

func hasContent(b []byte, d hl7v2.Delimiters) bool {
	if len(b) == 2 && b[0] == '"' && b[1] == '"' {
		return false
	}
	for _, c := range b {
		if c != d.Component && c != d.Repetition && c != d.Subcomponent && c != ' ' {
			return true
		}
	}
	return false
}

// patientTypes are the message types that are about one patient, so a
// receiver cannot file them without a patient identifier (PID-3).
var patientTypes = map[string]bool{
	"ADT": true, "ORM": true, "OML": true, "ORU": true, "OUL": true,
	"SIU": true, "MDM": true, "DFT": true, "BAR": true, "RDE": true,
	"RDS": true, "RAS": true, "VXU": true, "PPR": true, "REF": true,
}
