package hl7v2

import (
	"testing"
	"time"
)

func TestUnescape(t *testing.T) {
	d := DefaultDelimiters
	d27 := Delimiters{'|', '^', '~', '\\', '&', '#'}
	custom := Delimiters{'*', '%', '$', '!', '@', 0}
	tests := []struct {
		in   string
		d    Delimiters
		want string
	}{
		{`plain`, d, "plain"},
		{`a\F\b\S\c\T\d\R\e\E\f`, d, "a|b^c&d~e\\f"},
		{`x\P\y`, d27, "x#y"},
		{`x\P\y`, d, `x\P\y`},
		{`line1\.br\line2`, d, "line1\nline2"},
		{`a\.sp\b\.sp2\c`, d, "a\nb\n\nc"},
		{`\.ce\Title\.fi\\.nf\`, d, "\nTitle"},
		{`\.in+4\x\.ti-2\y\.sk3\z`, d, "xyz"},
		{`\H\bold\N\`, d, "bold"},
		{`\X0D0A\`, d, "\r\n"},
		{`\XC3A9\`, d, "é"},
		{`\xe9\`, d, "\xe9"},
		{`\X0\`, d, `\X0\`},
		{`\XZZ\`, d, `\XZZ\`},
		{`\X41ZZ\`, d, `\X41ZZ\`},
		{`\C2842\abc\C2B42\`, d, `\C2842\abc\C2B42\`},
		{`\Zcustom\`, d, `\Zcustom\`},
		{`unterminated \F`, d, `unterminated \F`},
		{`\\F\`, d, `\|`},
		{`trailing\`, d, `trailing\`},
		{`\Q\S\`, d, `\Q^`},
		{`!F!x!S!`, custom, "*x%"},
		{`a\F\b`, Delimiters{'|', '^', '~', 0, '&', 0}, `a\F\b`},
		{`\T\`, Delimiters{'|', '^', '~', '\\', 0, 0}, `\T\`},
	}
	for _, tc := range tests {
		if got := string(Unescape(nil, []byte(tc.in), tc.d)); got != tc.want {
			t.Errorf("Unescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		in   string
		d    Delimiters
		want string
	}{
		{"plain", DefaultDelimiters, "plain"},
		{"a|b^c&d~e\\f", DefaultDelimiters, `a\F\b\S\c\T\d\R\e\E\f`},
		{"1\n2\r3", DefaultDelimiters, `1\.br\2\X0D\3`},
		{"x#y", Delimiters{'|', '^', '~', '\\', '&', '#'}, `x\P\y`},
		{"x#y", DefaultDelimiters, "x#y"},
		{"*%!", Delimiters{'*', '%', '$', '!', '@', 0}, `!F!!S!!E!`},
	}
	for _, tc := range tests {
		if got := string(Escape(nil, tc.in, tc.d)); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	ds := []Delimiters{DefaultDelimiters, {'|', '^', '~', '\\', '&', '#'}, {'*', '%', '$', '!', '@', 0}}
	values := []string{"", "plain", "a|b^c&d~e\\f", `\F\ literal`, "multi\nline\r\ntext", "M\xfcller", "#hash", "!!", `\X41\`, "\\"}
	for _, d := range ds {
		for _, v := range values {
			esc := Escape(nil, v, d)
			if got := string(Unescape(nil, esc, d)); got != v {
				t.Errorf("round trip with %q of %q: escaped %q, back %q", d.EncodingChars(), v, esc, got)
			}
		}
	}
}

func TestParseTime(t *testing.T) {
	est := time.FixedZone("", -5*3600)
	ist := time.FixedZone("", 5*3600+30*60)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2024", want: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		{in: "202403", want: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		{in: "20240315", want: time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)},
		{in: "2024031514", want: time.Date(2024, 3, 15, 14, 0, 0, 0, time.UTC)},
		{in: "202403151430", want: time.Date(2024, 3, 15, 14, 30, 0, 0, time.UTC)},
		{in: "20240315143059", want: time.Date(2024, 3, 15, 14, 30, 59, 0, time.UTC)},
		{in: "20240315143059.1", want: time.Date(2024, 3, 15, 14, 30, 59, 100_000_000, time.UTC)},
		{in: "20240315143059.1234", want: time.Date(2024, 3, 15, 14, 30, 59, 123_400_000, time.UTC)},
		{in: "20240315143059-0500", want: time.Date(2024, 3, 15, 14, 30, 59, 0, est)},
		{in: "20240315143059.12+0530", want: time.Date(2024, 3, 15, 14, 30, 59, 120_000_000, ist)},
		{in: "202403151430-0500", want: time.Date(2024, 3, 15, 14, 30, 0, 0, est)},
		{in: "20240315+0000", want: time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)},
		{in: "20240315143059-05", want: time.Date(2024, 3, 15, 14, 30, 59, 0, est)},
		{in: "200401011200^M", want: time.Date(2004, 1, 1, 12, 0, 0, 0, time.UTC)},
		{in: " 20240315 ", want: time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC)},
		{in: "20240229", want: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{in: "", bad: true},
		{in: "^S", bad: true},
		{in: "24", bad: true},
		{in: "2024031", bad: true},
		{in: "20240230", bad: true},
		{in: "20230229", bad: true},
		{in: "20241301", bad: true},
		{in: "20240100", bad: true},
		{in: "2024031524", bad: true},
		{in: "202403151460", bad: true},
		{in: "20240315143060", bad: true},
		{in: "20240315143059.", bad: true},
		{in: "20240315143059.12345", bad: true},
		{in: "202403151430.5", bad: true},
		{in: "20240315143059-05:00", bad: true},
		{in: "20240315143059-2500", bad: true},
		{in: "2024-03-15", bad: true},
		{in: "2024031514305X", bad: true},
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseTime(%q) = %v, want error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		_, gotOff := got.Zone()
		_, wantOff := tc.want.Zone()
		if gotOff != wantOff {
			t.Errorf("ParseTime(%q) offset %d, want %d", tc.in, gotOff, wantOff)
		}
	}
	loc := time.FixedZone("sender", 3600)
	got, err := ParseTimeIn("20240315143059", loc)
	if err != nil || got.Location() != loc {
		t.Errorf("ParseTimeIn = %v, %v; want in the sender zone", got, err)
	}
	if s := FormatTime(time.Date(2024, 3, 15, 14, 30, 59, 0, est)); s != "20240315143059-0500" {
		t.Errorf("FormatTime = %q", s)
	}
}
