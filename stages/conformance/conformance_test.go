package conformance

import (
	"strings"
	"testing"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

func msg(t *testing.T, segs ...string) *hl7v2.Message {
	t.Helper()
	m, err := hl7v2.Parse([]byte(strings.Join(segs, "\r") + "\r"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const (
	mshA01 = "MSH|^~\\&|EHR|HOSP|LAB|HOSP|20250101120000||ADT^A01|C1|P|2.5.1"
	mshA99 = "MSH|^~\\&|EHR|HOSP|LAB|HOSP|20250101120000||ADT^A99|C1|P|2.5.1"
	mshSIU = "MSH|^~\\&|EHR|HOSP|LAB|HOSP|20250101120000||SIU^S12|C1|P|2.5.1"
	mshV23 = "MSH|^~\\&|EHR|HOSP|LAB|HOSP|20250101120000||ADT^A01|C1|P|2.3"
	pidOK  = "PID|1||NG1^^^HOSP^MR||Doe^Jane"
)

func TestCheck(t *testing.T) {
	rules := Rules{
		MessageTypes: []string{"ADT^A01", "ADT^A08", "ORU^*"},
		Versions:     []string{"2.5.1"},
		Required: map[string][]string{
			"ADT^*": {"PID", "PID-5", "PV1-3.1"},
			"ORU":   {"OBR[2]-4"},
		},
	}
	tests := []struct {
		name                string
		m                   []string
		code, loc, hl7, txt string // zero: no violation
	}{
		{"passes", []string{mshA01, pidOK, "PV1|1|I|WARD1"}, "", "", "", ""},
		{"unknown trigger of a known type", []string{mshA99, pidOK}, CodeMessageType, "MSH-9.2", "201", "does not accept ADT^A99"},
		{"unknown type", []string{mshSIU, pidOK}, CodeMessageType, "MSH-9.1", "200", "does not accept SIU^S12"},
		{"unaccepted version", []string{mshV23, pidOK}, CodeVersion, "MSH-12", "203", `"2.3"`},
		{"missing segment", []string{mshA01}, CodeRequired, "PID", "100", "lacks required PID, PID-5, PV1-3.1"},
		{"missing name", []string{mshA01, "PID|1||NG1^^^HOSP^MR", "PV1|1|I|WARD1"}, CodeRequired, "PID-5", "101", "lacks required PID-5"},
		{"delimiters only are missing", []string{mshA01, "PID|1||NG1^^^HOSP^MR||^^^", "PV1|1|I|WARD1"}, CodeRequired, "PID-5", "101", ""},
		{"HL7 null is missing", []string{mshA01, "PID|1||NG1^^^HOSP^MR||\"\"", "PV1|1|I|WARD1"}, CodeRequired, "PID-5", "101", ""},
		{"component missing", []string{mshA01, pidOK, "PV1|1|I|^BAY1"}, CodeRequired, "PV1-3.1", "101", ""},
		{"occurrence missing", []string{"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20250101120000||ORU^R01|C1|P|2.5.1", pidOK, "OBR|1||F1|CBC"}, CodeRequired, "OBR[2]-4", "101", ""},
		{"no patient identifier", []string{mshA01, "PID|1||^^^HOSP^MR||Doe^Jane", "PV1|1|I|WARD1"}, CodeRequired, "PID-3", "101", "no patient identifier"},
		{"a merge into itself", []string{mshA01, pidOK, "MRG|NG1^^^HOSP^MR", "PV1|1|I|WARD1"}, CodeSelfMerge, "MRG-1", "207", "merges a patient into itself"},
		{"a merge of the same number from another authority", []string{mshA01, pidOK, "MRG|NG1^^^OTHER^MR", "PV1|1|I|WARD1"}, "", "", "", ""},
		{"a merge into itself, second repetition", []string{mshA01, pidOK, "MRG|X1^^^HOSP^MR~NG1^^^hosp^MR", "PV1|1|I|WARD1"}, CodeSelfMerge, "MRG-1[2]", "207", ""},
	}
	k, err := New(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := k.Check(msg(t, tc.m...))
			if tc.code == "" {
				if v != nil {
					t.Fatalf("Check = %v, want none", v)
				}
				return
			}
			if v == nil || v.Code != tc.code || v.Location != tc.loc || v.HL7Code != tc.hl7 || !strings.Contains(v.Text, tc.txt) {
				t.Fatalf("Check = %+v, want %s at %s (0357 %s) saying %q", v, tc.code, tc.loc, tc.hl7, tc.txt)
			}
			if wantReject := tc.code == CodeMessageType || tc.code == CodeVersion; v.Reject != wantReject {
				t.Errorf("Reject = %v, want %v: type and version failures are AR, content failures AE", v.Reject, wantReject)
			}
			if strings.Contains(v.Error(), "Jane") || strings.Contains(v.Error(), "NG1") {
				t.Errorf("the violation names the patient: %v", v)
			}
		})
	}
}

func TestZeroRulesStillNeedAPatient(t *testing.T) {
	k, err := New(Rules{})
	if err != nil {
		t.Fatal(err)
	}
	if v := k.Check(msg(t, mshSIU, pidOK)); v != nil {
		t.Errorf("no rules: %v, want none", v)
	}
	if v := k.Check(msg(t, mshA01)); v == nil || v.Location != "PID-3" {
		t.Errorf("ADT without PID under no rules: %v, want PID-3 missing", v)
	}
}

func TestNewRefusesMalformedRules(t *testing.T) {
	for _, r := range []Rules{
		{MessageTypes: []string{"ADT^A01^X"}},
		{MessageTypes: []string{"*^A01"}},
		{Required: map[string][]string{"ADT": {"PID.3"}}},
	} {
		if _, err := New(r); err == nil {
			t.Errorf("New(%+v) accepted malformed rules", r)
		}
	}
}

// BenchmarkCheck is the work ack: validated adds to an ACK: the demo ehr
// interface's rules on a typical ADT^A01 that passes them.
func BenchmarkCheck(b *testing.B) {
	k, err := New(Rules{
		MessageTypes: []string{"ADT^*", "ORM^O01", "OML^O21"},
		Required:     map[string][]string{"ADT^*": {"PID", "PID-3", "PID-5"}, "ORM^O01": {"PID-3", "ORC", "OBR"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	m, err := hl7v2.Parse([]byte(strings.Join([]string{mshA01, "EVN|A01|20250101120000", pidOK + "||19800101|F", "PV1|1|I|WARD1^101^A"}, "\r") + "\r"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if v := k.Check(m); v != nil {
			b.Fatal(v)
		}
	}
}
