package hl7v2

import (
	"errors"
	"strings"
	"time"
)

// ParseTime parses an HL7 DTM or TS value:
// YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. A TS's "^precision"
// component is ignored, as are surrounding spaces. Without an offset the
// time is read as UTC; senders mean their local time, so use ParseTimeIn
// when the sender's zone is known. Missing parts default to their minimum
// (January, day 1, 00:00). Errors never contain the value.
func ParseTime(s string) (time.Time, error) { return ParseTimeIn(s, time.UTC) }

// ParseTimeIn is ParseTime reading a value without offset in loc.
func ParseTimeIn(s string, loc *time.Location) (time.Time, error) {
	if i := strings.IndexByte(s, '^'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errTimeEmpty
	}
	// Split off the offset.
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		off := s[i:]
		s = s[:i]
		var ok bool
		if loc, ok = parseOffset(off); !ok {
			return time.Time{}, errTimeOffset
		}
	}
	var frac string
	if i := strings.IndexByte(s, '.'); i >= 0 {
		frac = s[i+1:]
		s = s[:i]
		if len(s) != 14 || len(frac) == 0 || len(frac) > 4 || !digits(frac) {
			return time.Time{}, errTimeFormat
		}
	}
	switch len(s) {
	case 4, 6, 8, 10, 12, 14:
	default:
		return time.Time{}, errTimeFormat
	}
	if !digits(s) {
		return time.Time{}, errTimeFormat
	}
	part := func(from, to, def int) int {
		if len(s) < to {
			return def
		}
		return atoi(s[from:to])
	}
	y, mo, d := part(0, 4, 0), part(4, 6, 1), part(6, 8, 1)
	h, mi, sec := part(8, 10, 0), part(10, 12, 0), part(12, 14, 0)
	ns := 0
	if frac != "" {
		ns = atoi(frac)
		for i := len(frac); i < 9; i++ {
			ns *= 10
		}
	}
	if mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, errTimeRange
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, ns, loc)
	if t.Day() != d { // 31 April and the like normalise into the next month
		return time.Time{}, errTimeRange
	}
	return t, nil
}

var (
	errTimeEmpty  = errors.New("hl7 time is empty")
	errTimeFormat = errors.New("hl7 time is not YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]")
	errTimeOffset = errors.New("hl7 time offset is not +/-HHMM")
	errTimeRange  = errors.New("hl7 time has a month, day, hour, minute or second out of range")
)

// parseOffset reads "+HHMM" or "-HHMM" (also "+HH", which some feeds send).
func parseOffset(s string) (*time.Location, bool) {
	sign := 1
	if s[0] == '-' {
		sign = -1
	}
	s = s[1:]
	if (len(s) != 4 && len(s) != 2) || !digits(s) {
		return nil, false
	}
	h, m := atoi(s[:2]), 0
	if len(s) == 4 {
		m = atoi(s[2:])
	}
	if h > 14 || m > 59 {
		return nil, false
	}
	secs := sign * (h*3600 + m*60)
	if secs == 0 {
		return time.UTC, true
	}
	return time.FixedZone("", secs), true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// FormatTime writes t as an HL7 DTM with seconds and offset:
// YYYYMMDDHHMMSS±ZZZZ.
func FormatTime(t time.Time) string { return t.Format("20060102150405-0700") }
