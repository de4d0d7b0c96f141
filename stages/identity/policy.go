// This file is the identifier policy (issue 11): which PID-3 identifiers a
// hospital trusts to say who a patient is, in what order, and the check
// digits that tell a mistyped national number from a real one. The
// patient key is taken from the most trusted identifier that is valid, so
// two systems that know one person by two hospital numbers and one NHS
// number key that person alike; an identifier that fails its check digit
// is never used to key or match anyone. Without a policy the key is
// PatientKey's: the first identifier with an assigning authority.

package identity

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// Trusted is one kind of identifier a policy trusts: by identifier type
// code (CX.5, HL7 table 0203: NH national health number, MR medical
// record number, PI patient internal identifier) and assigning authority
// (CX.4.1), either of which may be empty to match any; and the check-digit
// scheme its numbers carry ("" for none).
type Trusted struct {
	Type      string
	Authority string
	Check     string
}

// Policy is an ordered list of trusted identifier kinds, most trusted
// first. The zero Policy keys as PatientKey does.
type Policy struct {
	Trust []Trusted
}

// Invalid is an identifier a policy refused: it failed its check digit.
type Invalid struct {
	Value, Authority, Type string
	Rep                    int // its PID-3 repetition, from 1
	Reason                 string
}

func (t Trusted) Matches(r hl7v2.Field) bool {
	return t.matches(Identifier{Type: strings.TrimSpace(r.Component(5).String()), Authority: strings.TrimSpace(r.Component(4).Sub(1).String())})
}

func (t Trusted) matches(id Identifier) bool {
	return (t.Type == "" || strings.EqualFold(id.Type, t.Type)) && (t.Authority == "" || strings.EqualFold(id.Authority, t.Authority))
}

// Identifier is one patient identifier as a policy reads it, whichever
// standard it came in: PID-3's CX.1, CX.4.1 and CX.5, or a FHIR
// Identifier's value, system (as its authority) and type.
type Identifier struct {
	Value, Authority, Type string
}

// PatientKey is m's patient key under p: "CX.1^CX.4.1" of the repetition
// of PID-3 that matches the earliest trusted kind and passes its check
// digit. When none does, it is PatientKey's choice among the repetitions
// that did not fail a check digit. invalid lists the repetitions that
// failed theirs; "" when m names no usable patient identifier.
func (p Policy) PatientKey(m *hl7v2.Message) (key string, invalid []Invalid) {
	pid, ok := m.Segment("PID")
	if !ok {
		return "", nil
	}
	f := pid.Field(3)
	ids := make([]Identifier, f.Reps())
	for i := range ids {
		r := f.Rep(i + 1)
		ids[i] = Identifier{Value: strings.TrimSpace(r.Component(1).String()),
			Authority: strings.TrimSpace(r.Component(4).Sub(1).String()), Type: strings.TrimSpace(r.Component(5).String())}
	}
	return p.Key(ids)
}

// Key is the patient key of ids under p, by PatientKey's rules; an
// Invalid's Rep is its index in ids, from 1.
func (p Policy) Key(ids []Identifier) (key string, invalid []Invalid) {
	bad := map[int]bool{}
	for i, id := range ids {
		if !present(id.Value) {
			continue
		}
		for _, t := range p.Trust {
			if t.Check == "" || !t.matches(id) {
				continue
			}
			if err := CheckDigit(t.Check, id.Value); err != nil {
				bad[i] = true
				invalid = append(invalid, Invalid{Value: id.Value, Authority: id.Authority, Type: id.Type, Rep: i + 1, Reason: err.Error()})
				break
			}
		}
	}
	keyOf := func(id Identifier) string { return id.Value + "^" + id.Authority }
	for _, t := range p.Trust {
		for i, id := range ids {
			if !bad[i] && present(id.Value) && t.matches(id) {
				return keyOf(id), invalid
			}
		}
	}
	// No trusted kind present: the usual rule, among the valid ones.
	first := -1
	for i, id := range ids {
		if bad[i] || !present(id.Value) {
			continue
		}
		if present(id.Authority) {
			return keyOf(id), invalid
		}
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return "", invalid
	}
	return keyOf(ids[first]), invalid
}

// ErrCheckDigit is wrapped by CheckDigit's error for a number whose check
// digit is wrong.
var ErrCheckDigit = errors.New("check digit does not match")

// checkers are the check-digit schemes, by name.
var checkers = map[string]func(string) error{
	"nhs": modulus11, // NHS number (England, Wales, Isle of Man)
	"chi": modulus11, // Community Health Index (Scotland): the same scheme
}

// CheckSchemes lists the check-digit schemes careflow knows, sorted.
func CheckSchemes() []string {
	out := make([]string, 0, len(checkers))
	for k := range checkers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CheckDigit checks value's check digit under scheme ("nhs", "chi"). The
// error says what is wrong without repeating the number.
func CheckDigit(scheme, value string) error {
	c, ok := checkers[scheme]
	if !ok {
		return fmt.Errorf("no check-digit scheme %q (known: %s)", scheme, strings.Join(CheckSchemes(), ", "))
	}
	return c(value)
}

// modulus11 is the NHS and CHI scheme: ten digits; the first nine weighted
// 10 down to 2 and summed; 11 minus the sum modulo 11 is the tenth digit
// (11 stands for 0, and 10 means the number was never issued). Spaces,
// as the numbers are often written (943 476 5919), are ignored.
func modulus11(value string) error {
	digits := strings.ReplaceAll(value, " ", "")
	if len(digits) != 10 {
		return fmt.Errorf("want 10 digits, got %d characters: %w", len(digits), ErrCheckDigit)
	}
	sum := 0
	for i := range 10 {
		c := digits[i]
		if c < '0' || c > '9' {
			return fmt.Errorf("character %d is not a digit: %w", i+1, ErrCheckDigit)
		}
		if i < 9 {
			sum += int(c-'0') * (10 - i)
		}
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	if check == 10 || check != int(digits[9]-'0') {
		return fmt.Errorf("modulus 11: %w", ErrCheckDigit)
	}
	return nil
}
