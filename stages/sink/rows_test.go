package sink_test

import (
	"testing"
	"time"

	"github.com/careflow-health/careflow/stages/sink"
)

func TestParseDTM(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"20261126", time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)},
		{"202611261015", time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)},
		{"20261126101530.25", time.Date(2026, 11, 26, 10, 15, 30, 250e6, time.UTC)},
		{"20261126101530+0100", time.Date(2026, 11, 26, 9, 15, 30, 0, time.UTC)},
		{"20261126101530-0500", time.Date(2026, 11, 26, 15, 15, 30, 0, time.UTC)},
		{"", time.Time{}},
		{"2026112", time.Time{}},         // odd length
		{"20260231", time.Time{}},        // no such day
		{"2026AB26", time.Time{}},        // not digits
		{"202611261015301", time.Time{}}, // too long
	} {
		if got := sink.ParseDTM(tc.in); !got.Equal(tc.want) {
			t.Errorf("ParseDTM(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}

func TestPatientHashHidesTheKey(t *testing.T) {
	h := sink.PatientHash([]byte("12345^GENHOSP"))
	if len(h) != 64 || h == sink.PatientHash([]byte("12346^GENHOSP")) {
		t.Errorf("hash %q: want 64 hex digits, distinct per key", h)
	}
	if sink.PatientHash(nil) != "" {
		t.Error("no key must hash to empty")
	}
}
