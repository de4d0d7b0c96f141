package hl7v2

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const adtCR = "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|CAREFLOW|CF|20240105083000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r" +
	"EVN|A01|20240105083000\r" +
	"PID|1||PATID1234^^^GHH^MR~999-99-9999^^^USSSA^SS||EVERYMAN^ADAM^A^III||19610615|M\r" +
	"PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A|||SUR\r"

// lines joins segments with term.
func lines(term string, segs ...string) []byte { return []byte(strings.Join(segs, term) + term) }

func TestParseQuirks(t *testing.T) {
	msh := "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.3"
	tests := []struct {
		name     string
		in       []byte
		segs     []string // expected segment names
		checks   map[string]string
		wantCode string
	}{
		{name: "CR", in: []byte(adtCR), segs: []string{"MSH", "EVN", "PID", "PV1"}, checks: map[string]string{"PID-5.2": "ADAM"}},
		{name: "LF", in: lines("\n", msh, "PID|1||X"), segs: []string{"MSH", "PID"}, checks: map[string]string{"PID-3": "X"}},
		{name: "CRLF", in: lines("\r\n", msh, "PID|1||X"), segs: []string{"MSH", "PID"}, checks: map[string]string{"PID-3": "X"}},
		{name: "mixed terminators", in: []byte(msh + "\rEVN|A08\nPID|1||X\r\nPV1|1|O\r"), segs: []string{"MSH", "EVN", "PID", "PV1"}},
		{name: "no final terminator", in: []byte(msh + "\rPID|1||X"), segs: []string{"MSH", "PID"}, checks: map[string]string{"PID-3": "X"}},
		{name: "trailing blank lines and FS", in: []byte(msh + "\rPID|1||X\r\r\n\n\x1c\r"), segs: []string{"MSH", "PID"}},
		{name: "MLLP framing and BOM", in: []byte("\x0b\xef\xbb\xbf" + msh + "\rPID|1||X\r\x1c\r"), segs: []string{"MSH", "PID"}},
		{name: "BOM", in: []byte("\xef\xbb\xbf" + msh + "\r"), segs: []string{"MSH"}, checks: map[string]string{"MSH-9.2": "A08"}},
		{name: "blank lines between segments", in: []byte(msh + "\r\r\nPID|1||X\r\n\r\nPV1|1\r"), segs: []string{"MSH", "PID", "PV1"}},
		{name: "segment without fields", in: lines("\r", msh, "ZZZ", "PID|1||X"), segs: []string{"MSH", "ZZZ", "PID"}, checks: map[string]string{"ZZZ-1": "", "PID-3": "X"}},
		{name: "Z-segment", in: lines("\r", msh, "ZPI|1|VIP^Very important|"), segs: []string{"MSH", "ZPI"}, checks: map[string]string{"ZPI-2.2": "Very important"}},
		{name: "empty and trailing fields", in: lines("\r", msh, "PID|||X||||||||"), segs: []string{"MSH", "PID"}, checks: map[string]string{"PID-3": "X", "PID-1": "", "PID-10": "", "PID-40": ""}},
		{name: "custom delimiters", in: lines("\r", "MSH*%$!@*A*B*C*D*2024**ADT%A01*1*P*2.4", "PID*1**X%Y@Z$W"), segs: []string{"MSH", "PID"},
			checks: map[string]string{"MSH-1": "*", "MSH-2": "%$!@", "MSH-9.2": "A01", "PID-3.2": "Y@Z", "PID-3.2.2": "Z", "PID-3[2]": "W"}},
		{name: "truncation char 2.7", in: lines("\r", "MSH|^~\\&#|A|B|C|D|2024||ADT^A01|1|P|2.7", "PID|1||X#"), segs: []string{"MSH", "PID"},
			checks: map[string]string{"MSH-2": "^~\\&#", "PID-3": "X#"}},
		{name: "three-char MSH-2", in: lines("\r", "MSH|^~\\|A|B|C|D|2024||ADT^A01|1|P|2.2", "PID|1||X&Y"), segs: []string{"MSH", "PID"},
			checks: map[string]string{"MSH-2": "^~\\", "PID-3.1.1": "X&Y"}},
		{name: "non-UTF-8 bytes", in: lines("\r", msh+"||||||8859/1", "PID|1||X||M\xfcller^J\xf6rg"), segs: []string{"MSH", "PID"},
			checks: map[string]string{"PID-5.1": "M\xfcller", "MSH-18": "8859/1"}},
		{name: "unescaped LF in text (CR message)", in: []byte(msh + "\rNTE|1||line one\nline two | with bar\rPID|1||X\r"), segs: []string{"MSH", "NTE", "PID"},
			checks: map[string]string{"NTE-3": "line one\nline two ", "NTE-4": " with bar"}},
		{name: "unescaped CR in text", in: []byte(msh + "\rNTE|1||Result follows\rsee attached report\rPID|1||X\r"), segs: []string{"MSH", "NTE", "PID"},
			checks: map[string]string{"NTE-3": "Result follows\rsee attached report"}},
		{name: "MSH-2 not split", in: lines("\r", msh), segs: []string{"MSH"}, checks: map[string]string{"MSH-2": "^~\\&", "MSH-2.2": "", "MSH-1": "|"}},

		{name: "empty", in: nil, wantCode: CodeEmpty},
		{name: "whitespace only", in: []byte("\r\n \x1c\r"), wantCode: CodeEmpty},
		{name: "no MSH", in: []byte("PID|1||X\r"), wantCode: CodeNoMSH},
		{name: "binary garbage", in: []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff, '\r', 0xfe}, wantCode: CodeNoMSH},
		{name: "MSH alone", in: []byte("MSH"), wantCode: CodeBadEncoding},
		{name: "alphanumeric encoding chars", in: []byte("MSH|ABCD|A|B|C|D|1||ADT^A01|1|P|2.5\r"), wantCode: CodeBadEncoding},
		{name: "duplicate encoding chars", in: []byte("MSH|^~^&|A|B|C|D|1||ADT^A01|1|P|2.5\r"), wantCode: CodeBadEncoding},
		{name: "encoding char equals field sep", in: []byte("MSH|^|\\&|A|B|C|D|1||ADT^A01|1|P|2.5\r"), wantCode: CodeBadEncoding},
		{name: "empty MSH-2", in: []byte("MSH||A|B|C|D|1||ADT^A01|1|P|2.5\r"), wantCode: CodeBadEncoding},
		{name: "six encoding chars", in: []byte("MSH|^~\\&#!|A|B|C|D|1||ADT^A01|1|P|2.5\r"), wantCode: CodeBadEncoding},
		{name: "alphanumeric field sep", in: []byte("MSHX^~\\&XAXB\r"), wantCode: CodeBadEncoding},
		{name: "truncated MSH", in: []byte("MSH|^~\\&|A|B|C\r"), wantCode: CodeTruncated},
		{name: "bad segment id", in: lines("\r", msh, "PIDX|1||X"), wantCode: CodeBadSegment},
		{name: "lower-case segment id", in: lines("\r", msh, "pid|1||X"), wantCode: CodeBadSegment},
		{name: "two messages", in: lines("\r", msh, "PID|1", msh), wantCode: CodeBatch},
		{name: "batch", in: lines("\r", "FHS|^~\\&", "BHS|^~\\&", msh, "BTS|1", "FTS|1"), wantCode: CodeBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.in)
			if tc.wantCode != "" {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Code != tc.wantCode {
					t.Fatalf("Parse error = %v, want code %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []string
			for _, s := range m.Segments() {
				got = append(got, s.Name())
			}
			if strings.Join(got, ",") != strings.Join(tc.segs, ",") {
				t.Errorf("segments = %v, want %v", got, tc.segs)
			}
			for p, want := range tc.checks {
				if g := m.Get(p); g != want {
					t.Errorf("Get(%q) = %q, want %q", p, g, want)
				}
			}
		})
	}
}

func TestParseErrorsNameLocation(t *testing.T) {
	tests := []struct {
		in, loc string
	}{
		{"MSH|^~^&|A\r", "MSH-2"},
		{"MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\rbad|segment\r", "segment 3"},
		{"EVN|A01\r", "segment 1"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.in))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Location != tc.loc {
			t.Errorf("Parse(%q) = %v, want location %s", tc.in, err, tc.loc)
		}
		if err != nil && strings.HasPrefix(err.Error(), "failed") {
			t.Errorf("error text %q", err)
		}
	}
}

func TestParseDoesNotCopy(t *testing.T) {
	data := []byte(adtCR)
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	raw := m.GetRaw("PID-5.1")
	if string(raw) != "EVERYMAN" {
		t.Fatalf("GetRaw = %q", raw)
	}
	i := bytes.Index(data, []byte("EVERYMAN"))
	if &raw[0] != &data[i] {
		t.Error("GetRaw copied the input")
	}
}

func TestParseLargeOBX(t *testing.T) {
	big := bytes.Repeat([]byte("A"), 1<<20)
	msg := append([]byte("MSH|^~\\&|LAB|H|EHR|H|20240101||ORU^R01|1|P|2.5.1\rOBX|1|ED|PDF^Report||^AP^PDF^Base64^"), big...)
	msg = append(msg, "||||||F\rNTE|1||end\r"...)
	m, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.GetRaw("OBX-5.5")); got != 1<<20 {
		t.Errorf("OBX-5.5 length = %d", got)
	}
	if m.Get("OBX-11") != "F" || m.Get("NTE-3") != "end" {
		t.Errorf("fields after the large value: OBX-11=%q NTE-3=%q", m.Get("OBX-11"), m.Get("NTE-3"))
	}
}

func TestSegmentAccess(t *testing.T) {
	m, err := Parse([]byte(adtCR + "OBX|1|ST|A||one\rOBX|2|ST|B||two\rOBX|3|ST|C||three\r"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.SegmentsNamed("OBX")); n != 3 {
		t.Errorf("SegmentsNamed(OBX) = %d", n)
	}
	if _, ok := m.Segment("NTE"); ok {
		t.Error("Segment(NTE) found in a message without NTE")
	}
	pid, _ := m.Segment("PID")
	if pid.NumFields() != 8 || pid.Name() != "PID" {
		t.Errorf("PID NumFields = %d, Name = %q", pid.NumFields(), pid.Name())
	}
	msh, _ := m.Segment("MSH")
	if msh.NumFields() != 12 || msh.Field(1).String() != "|" || msh.Field(12).String() != "2.5.1" {
		t.Errorf("MSH NumFields = %d, MSH-1 %q MSH-12 %q", msh.NumFields(), msh.Field(1), msh.Field(12))
	}
	f := pid.Field(3)
	if f.Reps() != 2 || f.Rep(2).Component(4).String() != "USSSA" || f.Rep(3).Empty() != true {
		t.Errorf("PID-3 reps = %d", f.Reps())
	}
	if pid.Get("3[2].1") != "999-99-9999" || pid.Get("5") != "EVERYMAN^ADAM^A^III" {
		t.Errorf("Segment.Get gave %q / %q", pid.Get("3[2].1"), pid.Get("5"))
	}
	if f.Component(1).Component(1).String() != "PATID1234" || f.Component(1).Component(2).Empty() == false {
		t.Error("Component of a component is not itself")
	}
	obx, _ := m.SegmentAt(m.NumSegments())
	if obx.Get("5") != "three" {
		t.Errorf("last segment OBX-5 = %q", obx.Get("5"))
	}
}
