// Package conformance holds an inbound interface's conformance rules (the
// `accept:` block of its configuration: message types, HL7 versions,
// required segments and fields, a patient identifier on patient messages)
// and applies them to a parsed message. Two stages apply them: ingest,
// before it answers a sender of an `ack: validated` interface, and
// validate, which dead-letters what fails. One package, so that the ACK a
// sender gets and the fate of its message never disagree.
package conformance

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages/identity"
)

// Codes of the rule a message fails; they become the outcome's and dead
// letter's error code.
const (
	CodeMessageType = "hl7.unsupported_message_type"
	CodeVersion     = "hl7.unsupported_version"
	CodeRequired    = "hl7.required_field"
	// CodeSelfMerge is a merge whose MRG-1 names the surviving patient's
	// own identifier: applied, it would retire the patient it keeps.
	CodeSelfMerge = "identity.self_merge"
)

// Violation is the first rule a message fails: careflow's code, the HL7
// location (PID-5, MSH-9.2), the HL7 table 0357 code an ACK's ERR carries,
// and a sentence for a person, free of patient data.
type Violation struct {
	Code     string
	Location string
	HL7Code  string
	Text     string
	// Reject is true for a message the interface does not take at all (its
	// type, trigger or version): HL7 answers that AR, "rejected for
	// reasons unrelated to content". A content error (a required field
	// missing) is AE.
	Reject bool
}

func (v *Violation) Error() string {
	if v.Location != "" {
		return v.Code + " at " + v.Location + ": " + v.Text
	}
	return v.Code + ": " + v.Text
}

// Checker is Rules compiled; the zero Checker accepts everything but a
// patient message without a patient.
type Checker struct{ c compiled }

// New compiles r, or says which rule is malformed.
func New(r Rules) (*Checker, error) {
	c, err := compile(r)
	if err != nil {
		return nil, err
	}
	return &Checker{c: c}, nil
}

// Check applies the rules to m in order (message type, version, required
// paths in rule order, the patient identifier) and returns the first one m
// fails, or nil.
func (k *Checker) Check(m *hl7v2.Message) *Violation {
	h := m.Header()
	msgType := h.MessageType + "^" + h.TriggerEvent
	if ok, loc := k.c.typeAllowed(h.MessageType, h.TriggerEvent); !ok {
		code := "200" // unsupported message type
		if loc == "MSH-9.2" {
			code = "201" // unsupported event code
		}
		return &Violation{Code: CodeMessageType, Location: loc, HL7Code: code, Text: "this interface does not accept " + msgType, Reject: true}
	}
	if !k.c.versionAllowed(h.Version) {
		return &Violation{Code: CodeVersion, Location: "MSH-12", HL7Code: "203", Text: fmt.Sprintf("this interface does not accept HL7 version %q", h.Version), Reject: true}
	}
	if missing := k.c.missing(m, h.MessageType, h.TriggerEvent); len(missing) > 0 {
		code := "101" // required field missing
		if !strings.Contains(missing[0], "-") {
			code = "100" // segment sequence error: a required segment is missing
		}
		return &Violation{Code: CodeRequired, Location: missing[0], HL7Code: code, Text: msgType + " lacks required " + strings.Join(missing, ", ")}
	}
	if patientTypes[h.MessageType] && !identity.HasPatient(m) {
		return &Violation{Code: CodeRequired, Location: "PID-3", HL7Code: "101", Text: msgType + " has no patient identifier (PID-3.1)"}
	}
	if loc := selfMerge(m); loc != "" {
		return &Violation{Code: CodeSelfMerge, Location: loc, HL7Code: "207",
			Text: msgType + " merges a patient into itself: " + loc + " names the same identifier (value and assigning authority) as PID-3"}
	}
	return nil
}

// selfMerge returns the location of the first MRG-1 repetition that is
// also one of the message's PID-3 identifiers, "" when none is.
func selfMerge(m *hl7v2.Message) string {
	mrg, ok := m.Segment("MRG")
	if !ok {
		return ""
	}
	pid, ok := m.Segment("PID")
	if !ok {
		return ""
	}
	id := func(r hl7v2.Field) string {
		return strings.TrimSpace(r.Component(1).String()) + "^" + strings.ToUpper(strings.TrimSpace(r.Component(4).Sub(1).String()))
	}
	own := map[string]bool{}
	p3 := pid.Field(3)
	for i := 1; i <= p3.Reps(); i++ {
		if v := strings.TrimSpace(p3.Rep(i).Component(1).String()); v != "" {
			own[id(p3.Rep(i))] = true
		}
	}
	m1 := mrg.Field(1)
	for i := 1; i <= m1.Reps(); i++ {
		r := m1.Rep(i)
		if strings.TrimSpace(r.Component(1).String()) != "" && own[id(r)] {
			if m1.Reps() == 1 {
				return "MRG-1"
			}
			return fmt.Sprintf("MRG-1[%d]", i)
		}
	}
	return ""
}

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
