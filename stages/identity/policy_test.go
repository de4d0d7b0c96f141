package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

func TestCheckDigit(t *testing.T) {
	tests := []struct {
		scheme, value string
		ok            bool
	}{
		{"nhs", "9434765919", true},   // NHS Digital's published test number
		{"nhs", "943 476 5919", true}, // written in groups
		{"nhs", "9434765918", false},  // the last digit mistyped
		{"nhs", "9434765", false},     // too short
		{"nhs", "94347659I9", false},  // a letter for a digit
		{"chi", "1234567881", true},
		{"chi", "0101011234", false},
	}
	for _, tc := range tests {
		err := CheckDigit(tc.scheme, tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("CheckDigit(%s, %s) = %v, want ok %v", tc.scheme, tc.value, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrCheckDigit) {
			t.Errorf("CheckDigit(%s, %s): %v does not wrap ErrCheckDigit", tc.scheme, tc.value, err)
		}
		if err != nil && strings.Contains(err.Error(), tc.value) {
			t.Errorf("the error repeats the number: %v", err)
		}
	}
	if err := CheckDigit("luhn", "79927398713"); err == nil || !strings.Contains(err.Error(), "chi, nhs") {
		t.Errorf("an unknown scheme: %v, want an error naming the known ones", err)
	}
}

// The policy keys a patient by the most trusted valid identifier, whatever
// order the sender wrote them in; an identifier that fails its check digit
// is reported and never used; with no trusted kind present the usual rule
// applies.
func TestPolicyPatientKey(t *testing.T) {
	p := Policy{Trust: []Trusted{{Type: "NH", Authority: "NHS", Check: "nhs"}, {Type: "MR", Authority: "HOSP"}}}
	tests := []struct {
		name, pid3 string
		want       string
		invalid    int
	}{
		{"national number first in trust, second in the message", "M1^^^HOSP^MR~9434765919^^^NHS^NH", "9434765919^NHS", 0},
		{"another hospital's MRN, same national number", "X77^^^OTHER^MR~9434765919^^^NHS^NH", "9434765919^NHS", 0},
		{"no national number: the hospital MRN", "X77^^^OTHER^MR~M1^^^HOSP^MR", "M1^HOSP", 0},
		{"a mistyped national number is not used", "9434765918^^^NHS^NH~M1^^^HOSP^MR", "M1^HOSP", 1},
		{"only a mistyped national number: no key", "9434765918^^^NHS^NH", "", 1},
		{"nothing trusted: the first with an authority", "P9^^^PORTAL^PI", "P9^PORTAL", 0},
		{"type and authority both must match", "9434765919^^^NHS^MR~M1^^^HOSP^MR", "M1^HOSP", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := hl7v2.Parse([]byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5.1\rPID|1||" + tc.pid3 + "||DOE^JANE\r"))
			if err != nil {
				t.Fatal(err)
			}
			key, invalid := p.PatientKey(m)
			if key != tc.want || len(invalid) != tc.invalid {
				t.Errorf("key %q with %d invalid (%+v), want %q with %d", key, len(invalid), invalid, tc.want, tc.invalid)
			}
		})
	}
}
