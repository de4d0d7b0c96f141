// This file fuzzes ParseTime, which reads the timestamps (DTM, TS) of
// every message.

package hl7v2

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// timeSeedPaths are fields holding times in the seed messages.
var timeSeedPaths = []string{"MSH-7", "EVN-2", "EVN-6", "PID-7", "PV1-44", "PV1-45", "ORC-9", "OBR-7", "OBX-14", "TQ1-7"}

// FuzzParseTime: ParseTime never panics; its errors are the four fixed
// ones (so never hold the value); a time it accepts has a four-digit year,
// is UTC when the value has no offset, and is the same instant when
// written by FormatTime (to the second) and read again; a precision
// component and surrounding spaces change nothing; digits written
// without fraction come back as written; ParseTimeIn reads a value
// without offset as that wall clock in its zone and one with an offset
// as ParseTime does.
func FuzzParseTime(f *testing.F) {
	for _, data := range messageSeeds(f) {
		m, err := Parse(data)
		if err != nil {
			continue
		}
		for _, p := range timeSeedPaths {
			if v := m.Get(p); v != "" {
				f.Add(v)
			}
		}
	}
	for _, s := range []string{"2024", "202403", "20240315", "2024031514", "202403151430", "20240315143059", "20240315143059.1234",
		"20240315143059-0500", "20240315143059+05", "20240315143059.5+1400", "20240229", "20230229", "20240431", "00000101",
		"99991231235959.9999-1459", " 20240315 ^M", "2024-03-15", "+0100", "20240315143060", "１２３４"} {
		f.Add(s)
	}
	est := time.FixedZone("EST", -5*3600)
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTime(s)
		if err != nil {
			if err != errTimeEmpty && err != errTimeFormat && err != errTimeOffset && err != errTimeRange {
				t.Fatalf("ParseTime(%q): unexpected error %v", s, err)
			}
			if _, err2 := ParseTime(" " + s + " "); !strings.Contains(s, "^") && !errors.Is(err2, err) {
				t.Fatalf("ParseTime(%q) = %v, with spaces %v", s, err, err2)
			}
			return
		}
		if y := tm.Year(); y < 0 || y > 9999 {
			t.Fatalf("ParseTime(%q) = %v: year out of range", s, tm)
		}
		value := s
		if i := strings.IndexByte(value, '^'); i >= 0 {
			value = value[:i]
		}
		value = strings.TrimSpace(value)
		hasOffset := strings.ContainsAny(value, "+-")
		if _, off := tm.Zone(); !hasOffset && (off != 0 || tm.Location() != time.UTC) {
			t.Fatalf("ParseTime(%q) = %v: not UTC without an offset", s, tm)
		}

		formatted := FormatTime(tm)
		back, err := ParseTime(formatted)
		if whole := tm.Add(-time.Duration(tm.Nanosecond())); err != nil || !back.Equal(whole) {
			t.Fatalf("ParseTime(%q) = %v; FormatTime %q reads back as %v, %v", s, tm, formatted, back, err)
		}
		if digits := strings.Split(strings.FieldsFunc(value, func(r rune) bool { return r == '+' || r == '-' })[0], ".")[0]; !strings.Contains(value, ".") &&
			!strings.HasPrefix(formatted, digits) {
			t.Fatalf("ParseTime(%q) = %v formats as %q, which does not start with %q", s, tm, formatted, digits)
		}
		if again, err := ParseTime(" \t" + value + " ^S"); err != nil || !again.Equal(tm) || again.Location().String() != tm.Location().String() {
			t.Fatalf("ParseTime(%q) = %v, with spaces and a precision %v, %v", s, tm, again, err)
		}

		in, err := ParseTimeIn(s, est)
		switch {
		case err != nil:
			t.Fatalf("ParseTime(%q) = %v, ParseTimeIn fails: %v", s, tm, err)
		case hasOffset && !in.Equal(tm):
			t.Fatalf("ParseTimeIn(%q) = %v, ParseTime %v", s, in, tm)
		case !hasOffset && (in.Location() != est || in.Format("20060102150405.000000000") != tm.Format("20060102150405.000000000")):
			t.Fatalf("ParseTimeIn(%q, EST) = %v, want the wall clock of %v in EST", s, in, tm)
		}
	})
}
