package identity

import (
	"testing"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

func msg(t *testing.T, pid3 string) *hl7v2.Message {
	t.Helper()
	m, err := hl7v2.Parse([]byte("MSH|^~\\&|EHR|HOSP|CF|CF|20240101||ADT^A08|C1|P|2.5.1\rPID|1||" + pid3 + "||DOE^JANE"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The PID-3 rule, decided once: the first repetition with an ID and an
// assigning authority, else the first with an ID; empty repetitions and
// explicit nulls name nobody.
func TestPatient(t *testing.T) {
	cases := []struct {
		name, pid3 string
		rep        int
		key        string
	}{
		{"one identifier", "123^^^HOSP^MR", 1, "123^HOSP"},
		{"first repetition empty", "~123^^^HOSP^MR", 2, "123^HOSP"},
		{"first repetition only components", "^^^HOSP^MR~123^^^HOSP^MR", 2, "123^HOSP"},
		{"first without authority, second with", "777~123^^^HOSP^MR", 2, "123^HOSP"},
		{"two with authorities: the first", "123^^^HOSP^MR~9990001234^^^NHS^NH", 1, "123^HOSP"},
		{"none with an authority: the first with an ID", "~777~888", 2, "777^"},
		{"authority as a hierarchic designator", "123^^^HOSP&1.2.3&ISO^MR", 1, "123^HOSP"},
		{"explicit null", `""`, 0, ""},
		{"spaces", "   ~  ", 0, ""},
		{"no PID-3", "", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := msg(t, c.pid3)
			pid, _ := m.Segment("PID")
			if got := PatientRepetition(pid.Field(3)); got != c.rep {
				t.Errorf("repetition %d, want %d", got, c.rep)
			}
			if got := PatientKey(m); got != c.key {
				t.Errorf("key %q, want %q", got, c.key)
			}
			if HasPatient(m) != (c.rep > 0) {
				t.Errorf("HasPatient = %v", HasPatient(m))
			}
		})
	}
	m, _ := hl7v2.Parse([]byte("MSH|^~\\&|EHR|HOSP|CF|CF|20240101||ADT^A08|C1|P|2.5.1\rEVN|A08"))
	if HasPatient(m) || PatientKey(m) != "" {
		t.Error("a message without PID names a patient")
	}
}

func TestIDs(t *testing.T) {
	a, b := NewMessageID(), NewMessageID()
	if len(a) != 32 || a == b {
		t.Errorf("message ids %q, %q", a, b)
	}
	if got := ACKControlID(a); len(got) != 20 || got != a[:20] {
		t.Errorf("ACK control id %q", got)
	}
	if ControlID("e1", "lab") != ControlID("e1", "lab") || ControlID("e1", "lab") == ControlID("e1", "portal") ||
		ControlID("ab", "c") == ControlID("a", "bc") || len(ControlID("e1", "lab")) != 20 {
		t.Error("ControlID is not stable per event and destination")
	}
	for id, want := range map[string]bool{"C1": true, "": false, "  ": false, `""`: false} {
		if HasControlID(id) != want {
			t.Errorf("HasControlID(%q) = %v", id, !want)
		}
	}
	if got := IdempotencyKey(msg(t, "1")); got != "EHR|HOSP|C1" {
		t.Errorf("idempotency key %q", got)
	}
	if got := OutcomeID("m1", "deliver", "lab", "attempt-2"); got != "m1/deliver/lab/attempt-2" {
		t.Errorf("outcome id %q", got)
	}
}
