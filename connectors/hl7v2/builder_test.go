package hl7v2

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBuilder(t *testing.T) {
	b := NewBuilder(DefaultDelimiters)
	b.MSH(Header{SendingApplication: "CAREFLOW", SendingFacility: "HOSP^1.2.3^ISO", DateTime: "20240105083000",
		MessageType: "ADT", TriggerEvent: "A01", MessageStructure: "ADT_A01", ControlID: "C1", ProcessingID: "P", Version: "2.5.1"})
	b.Segment("PID").
		Set("5.2", "JOHN").
		Set("3[2].1", "B123").
		Set("1", "1").
		Set("5.1", "DOE|O'NEIL").
		Set("3.1", "A123").
		Set("3[2].4.2", "1.2.3").
		Set("3[2].4.1", "SSA").
		Set("11.1", "1 Main St\nApt 2").
		Set("8", "").
		Set("1", "1")
	b.Segment("ZZZ")
	b.Segment("NTE").SetRaw("3", "raw^value")
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&|CAREFLOW|HOSP^1.2.3^ISO||||20240105083000||ADT^A01^ADT_A01|C1|P|2.5.1\r" +
		"PID|1||A123~B123^^^SSA&1.2.3||DOE\\F\\O'NEIL^JOHN||||||1 Main St\\.br\\Apt 2\r" +
		"ZZZ\r" +
		"NTE|||raw^value\r"
	// MSH-5 and MSH-6 are empty here, so MSH-7 follows four separators.
	want = strings.Replace(want, "ISO||||2024", "ISO|||2024", 1)
	got := string(b.Bytes())
	if got != want {
		t.Fatalf("Bytes() =\n%q\nwant\n%q", got, want)
	}
	m, err := Parse(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range map[string]string{"PID-5.1": "DOE|O'NEIL", "PID-3[2].4.2": "1.2.3", "PID-11.1": "1 Main St\nApt 2", "MSH-4.2": "1.2.3", "MSH-9.3": "ADT_A01"} {
		if g := m.Get(p); g != w {
			t.Errorf("after round trip Get(%q) = %q, want %q", p, g, w)
		}
	}
}

func TestBuilderLastSetWinsAndBadPaths(t *testing.T) {
	b := NewBuilder(Delimiters{})
	if b.Delimiters() != DefaultDelimiters {
		t.Errorf("invalid delimiters not replaced: %+v", b.Delimiters())
	}
	b.Segment("PID").Set("3", "first").Set("3", "second")
	if got := string(b.Bytes()); got != "PID|||second\r" {
		t.Errorf("Bytes() = %q", got)
	}
	for _, bad := range []struct{ seg, path string }{{"PID", "x"}, {"PID", "0"}, {"MSH", "2"}, {"PIDX", "1"}} {
		b := NewBuilder(DefaultDelimiters)
		b.Segment(bad.seg).Set(bad.path, "v")
		if b.Err() == nil {
			t.Errorf("Set(%s %q) recorded no error", bad.seg, bad.path)
		}
	}
}

func TestBuilderCustomDelimiters(t *testing.T) {
	d := Delimiters{'*', '%', '$', '!', '@', '#'}
	b := NewBuilder(d)
	b.MSH(Header{MessageType: "ADT", TriggerEvent: "A01", ControlID: "1", Version: "2.7"})
	b.Segment("PID").Set("3[2].1", "x*y#")
	m, err := Parse(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if m.Delimiters() != d || m.Get("PID-3[2].1") != "x*y#" || m.Get("MSH-2") != "%$!@#" {
		t.Errorf("custom delimiters round trip: %q %+v", b.Bytes(), m.Delimiters())
	}
}

func TestBuildACK(t *testing.T) {
	now := time.Date(2024, 1, 5, 8, 30, 0, 0, time.UTC)
	errs := []AckError{
		{Code: "101", Location: "PID-3[2].1", Severity: "E", Text: "Identifier missing"},
		{Code: "102", Location: "OBX[2]-5", Severity: "W"},
	}
	tests := []struct {
		name, version string
		want          string
	}{
		{"2.3", "2.3", "MSH|^~\\&|EHR|HOSP|LAB|LABFAC|20240105083000+0000||ACK^R01|ACK1|P|2.3\r" +
			"MSA|AE|LAB0001|See errors\r" +
			"ERR|PID^1^3^101&Identifier missing&HL70357\r" +
			"ERR|OBX^2^5^102&Data type error&HL70357\r"},
		{"2.4", "2.4", "MSH|^~\\&|EHR|HOSP|LAB|LABFAC|20240105083000+0000||ACK^R01^ACK|ACK1|P|2.4\r" +
			"MSA|AE|LAB0001|See errors\r" +
			"ERR|PID^1^3^101&Identifier missing&HL70357\r" +
			"ERR|OBX^2^5^102&Data type error&HL70357\r"},
		{"2.5", "2.5", "MSH|^~\\&|EHR|HOSP|LAB|LABFAC|20240105083000+0000||ACK^R01^ACK|ACK1|P|2.5\r" +
			"MSA|AE|LAB0001|See errors\r" +
			"ERR||PID^1^3^2^1|101^Required field missing^HL70357|E||||Identifier missing\r" +
			"ERR||OBX^2^5^1|102^Data type error^HL70357|W\r"},
		{"2.8", "2.8", "MSH|^~\\&|EHR|HOSP|LAB|LABFAC|20240105083000+0000||ACK^R01^ACK|ACK1|P|2.8\r" +
			"MSA|AE|LAB0001|See errors\r" +
			"ERR||PID^1^3^2^1|101^Required field missing^HL70357|E||||Identifier missing\r" +
			"ERR||OBX^2^5^1|102^Data type error^HL70357|W\r"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Header{SendingApplication: "LAB", SendingFacility: "LABFAC", ReceivingApplication: "EHR", ReceivingFacility: "HOSP",
				MessageType: "ORU", TriggerEvent: "R01", ControlID: "LAB0001", ProcessingID: "P", Version: tc.version}
			got := string(BuildACK(in, DefaultDelimiters, AckAE, ACKOptions{ControlID: "ACK1", Now: now, Text: "See errors", Errors: errs}))
			if got != tc.want {
				t.Fatalf("BuildACK =\n%q\nwant\n%q", got, tc.want)
			}
			ack, err := ParseACK([]byte(got))
			if err != nil {
				t.Fatal(err)
			}
			if ack.Code != AckAE || ack.ControlID != "LAB0001" || ack.Text != "See errors" || len(ack.Errors) != 2 {
				t.Fatalf("ParseACK = %+v", ack)
			}
			wantLoc := []string{"PID-3[2].1", "OBX[2]-5"}
			if parseVersion(tc.version) < 250 {
				wantLoc[0] = "PID-3" // ELD has no repetition or component
			}
			for i, e := range ack.Errors {
				if e.Location != wantLoc[i] || e.Code != errs[i].Code {
					t.Errorf("error %d = %+v, want location %s code %s", i, e, wantLoc[i], errs[i].Code)
				}
			}
			if v := parseVersion(tc.version); v >= 250 && (ack.Errors[0].Severity != "E" || ack.Errors[1].Severity != "W" || ack.Errors[0].Text != "Identifier missing") {
				t.Errorf("2.5 errors lost severity or text: %+v", ack.Errors)
			}
		})
	}
}

func TestBuildACKHeaderRules(t *testing.T) {
	now := time.Date(2024, 1, 5, 8, 30, 0, 123456000, time.UTC)
	d := Delimiters{'|', '^', '~', '\\', '&', '#'}
	in := Header{SendingApplication: "LAB^1.2.3^ISO", SendingFacility: "F", ReceivingApplication: "EHR", ReceivingFacility: "H",
		MessageType: "ADT", TriggerEvent: "A08", ControlID: "X\\1", ProcessingID: "T^T", Version: "2.7", Charset: "8859/1"}
	ack := BuildACK(in, d, AckCA, ACKOptions{Now: now, SendingApplication: "CAREFLOW", SendingFacility: "CF"})
	m, err := Parse(ack)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]string{"MSH-2": "^~\\&#", "MSH-3": "CAREFLOW", "MSH-4": "CF", "MSH-5": "LAB^1.2.3^ISO", "MSH-5.2": "1.2.3",
		"MSH-6": "F", "MSH-9": "ACK^A08^ACK", "MSH-10": "20240105083000123456", "MSH-11": "T^T", "MSH-12": "2.7",
		"MSH-18": "8859/1", "MSA-1": "CA", "MSA-2": "X\\1", "MSH-15": "", "ERR-1": ""}
	for p, w := range checks {
		if g := m.Get(p); g != w {
			t.Errorf("ACK Get(%q) = %q, want %q", p, g, w)
		}
	}
	// No trigger and 2.2: plain ACK.
	ack = BuildACK(Header{ControlID: "1", Version: "2.2"}, DefaultDelimiters, AckAA, ACKOptions{Now: now, ControlID: "2"})
	if m, err := Parse(ack); err != nil || m.Get("MSH-9") != "ACK" {
		t.Errorf("2.2 ACK without trigger: %q, %v", ack, err)
	}
	ack = BuildACK(Header{ControlID: "1", TriggerEvent: "A01", Version: "2.3"}, DefaultDelimiters, AckAA, ACKOptions{Now: now, ControlID: "2"})
	if m, err := Parse(ack); err != nil || m.Get("MSH-9") != "ACK^A01" {
		t.Errorf("2.3 ACK: %q, %v", ack, err)
	}
}

func TestAckModeEnhanced(t *testing.T) {
	tests := []struct {
		accept, app string
		want        bool
	}{{"", "", false}, {"AL", "", true}, {"", "NE", true}, {"NE", "NE", true}, {" ", "", false}}
	for _, tc := range tests {
		if got := AckModeEnhanced(Header{AcceptAckType: tc.accept, AppAckType: tc.app}); got != tc.want {
			t.Errorf("AckModeEnhanced(%q, %q) = %v", tc.accept, tc.app, got)
		}
	}
}

func TestParseACK(t *testing.T) {
	msh := "MSH|^~\\&|A|B|C|D|2024||ACK^A01|9|P|2.4\r"
	tests := []struct {
		name, in string
		code     AckCode
		errs     []AckError
		wantErr  string
	}{
		{name: "AA", in: msh + "MSA|AA|123\r", code: AckAA},
		{name: "2.2 with MSA-6", in: msh + "MSA|AR|123|Rejected|||200^Unsupported message type\r", code: AckAR,
			errs: []AckError{{Code: "200", Severity: "E", Text: "Unsupported message type"}}},
		{name: "2.4 ERR-1 repeating", in: msh + "MSA|AE|123\rERR|PID^1^7^102&Data type error&HL70357~PV1^1^2^101&&HL70357\r", code: AckAE,
			errs: []AckError{{Code: "102", Location: "PID-7", Severity: "E", Text: "Data type error"}, {Code: "101", Location: "PV1-2", Severity: "E"}}},
		{name: "2.5 ERR", in: msh + "MSA|CE|123\rERR||OBX^2^5^1^3|207^Application internal error^HL70357|E||||Store down\r", code: AckCE,
			errs: []AckError{{Code: "207", Location: "OBX[2]-5.3", Severity: "E", Text: "Store down"}}},
		{name: "2.5 ERR without ERR-8", in: msh + "MSA|CR|123\rERR|||203^Unsupported version id^HL70357|E\r", code: AckCR,
			errs: []AckError{{Code: "203", Severity: "E", Text: "Unsupported version id"}}},
		{name: "CRLF and framing", in: "\x0b" + strings.ReplaceAll(msh+"MSA|CA|123\r", "\r", "\r\n") + "\x1c\r", code: AckCA},
		{name: "no MSA", in: msh + "PID|1\r", wantErr: CodeNoMSA},
		{name: "bad code", in: msh + "MSA|OK|123\r", wantErr: CodeBadAckCode},
		{name: "empty code", in: msh + "MSA||123\r", wantErr: CodeBadAckCode},
		{name: "garbage", in: "\x00\x01\x02", wantErr: CodeNoMSH},
		{name: "empty", in: "", wantErr: CodeEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ack, err := ParseACK([]byte(tc.in))
			if tc.wantErr != "" {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Code != tc.wantErr {
					t.Fatalf("ParseACK error = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ack.Code != tc.code || ack.ControlID != "123" {
				t.Errorf("ParseACK = %+v", ack)
			}
			if len(ack.Errors) != len(tc.errs) {
				t.Fatalf("errors = %+v, want %+v", ack.Errors, tc.errs)
			}
			for i := range tc.errs {
				if ack.Errors[i] != tc.errs[i] {
					t.Errorf("error %d = %+v, want %+v", i, ack.Errors[i], tc.errs[i])
				}
			}
		})
	}
}

// A message larger than the Builder's inline storage (many segments,
// fields and bytes), with fields set out of order and segments revisited
// after later ones were started, comes out in segment and field order.
func TestBuilderBeyondInlineStorage(t *testing.T) {
	for _, segs := range []int{1, 8, 9, 40} {
		b := NewBuilder(DefaultDelimiters)
		var sbs []*SegmentBuilder
		for i := range segs {
			sbs = append(sbs, b.Segment("OBX"))
			sbs[i].Set("1", strconv.Itoa(i+1))
		}
		long := strings.Repeat("x", 300)
		for f := 12; f >= 2; f-- { // every segment, last field first
			for i, sb := range sbs {
				sb.Set(strconv.Itoa(f), fmt.Sprintf("%d-%d%s", i+1, f, long[:f*5]))
			}
		}
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for i := range segs {
			want.WriteString("OBX|" + strconv.Itoa(i+1))
			for f := 2; f <= 12; f++ {
				fmt.Fprintf(&want, "|%d-%d%s", i+1, f, long[:f*5])
			}
			want.WriteByte('\r')
		}
		if got := string(b.Bytes()); got != want.String() {
			t.Errorf("%d segments:\n got %q\nwant %q", segs, got, want.String())
		}
	}
}

// Building a typical message allocates the Builder and the output, not
// anything per segment or field.
func TestBuilderDoesNotAllocatePerField(t *testing.T) {
	build := func(fields int) func() {
		return func() {
			b := NewBuilder(DefaultDelimiters)
			b.MSH(Header{SendingApplication: "CAREFLOW", MessageType: "ADT", TriggerEvent: "A01", ControlID: "C1", ProcessingID: "P", Version: "2.5.1"})
			pid := b.Segment("PID")
			for f := range fields {
				pid.Set(fieldPaths[f], "VALUE")
			}
			_ = b.Bytes()
		}
	}
	few, many := testing.AllocsPerRun(50, build(2)), testing.AllocsPerRun(50, build(30))
	if many != few || many > 2 {
		t.Errorf("2 fields: %v allocations, 30 fields: %v; want the same, at most 2 (the Builder and the output)", few, many)
	}
}

var fieldPaths = func() []string {
	var p []string
	for f := 1; f <= 30; f++ {
		p = append(p, strconv.Itoa(f))
	}
	return p
}()
