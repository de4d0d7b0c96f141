package hl7v2

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSplitFile(t *testing.T) {
	const a01 = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5"
	const a08 = "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|2|P|2.5"
	tests := []struct {
		name     string
		in       string
		want     []string
		wantCode string
	}{
		{"one message with CR", a01 + "\rPID|1\r", []string{a01 + "\rPID|1\r"}, ""},
		{"LF and CR LF, blank lines", a01 + "\nPID|1\n\n" + a08 + "\r\nPID|2\r\n", []string{a01 + "\rPID|1\r", a08 + "\rPID|2\r"}, ""},
		{"leading blank lines", "\n\n" + a01 + "\n", []string{a01 + "\r"}, ""},
		{"no final terminator", a01 + "\nPID|1", []string{a01 + "\rPID|1\r"}, ""},
		{"batch envelope unwrapped", "FHS|^~\\&\nBHS|^~\\&\n" + a01 + "\nPID|1\n" + a08 + "\nBTS|2\nFTS|1\n", []string{a01 + "\rPID|1\r", a08 + "\r"}, ""},
		{"text continuing a segment stays in it", a01 + "\nNTE|1||the MSH-9 was\nMSH-9 was wrong\n", []string{a01 + "\rNTE|1||the MSH-9 was\rMSH-9 was wrong\r"}, ""},
		{"UTF-8 byte-order mark, one message", "\xef\xbb\xbf" + a01 + "\nPID|1\n", []string{a01 + "\rPID|1\r"}, ""},
		{"an MLLP capture", "\x0b" + a01 + "\rPID|1\r\x1c\r\x0b" + a08 + "\r\x1c\r", []string{a01 + "\rPID|1\r", a08 + "\r"}, ""},
		{"empty", "", nil, CodeEmpty},
		{"only whitespace", " \n\r\n\t", nil, CodeEmpty},
		{"no MSH", "EVN|A01\nPID|1\n", nil, CodeNoMSH},
		{"text before the first MSH", "junk\n" + a01 + "\n", nil, CodeBadSegment},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SplitFile([]byte(tc.in))
			if tc.wantCode == CodeBadSegment && err != nil && !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %v does not name the file's line", err)
			}
			if tc.wantCode != "" {
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Code != tc.wantCode {
					t.Fatalf("SplitFile(%q) error = %v, want %s", tc.in, err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("SplitFile(%q): %v", tc.in, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("SplitFile(%q) = %q, want %q", tc.in, got, tc.want)
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Errorf("message %d = %q, want %q", i, got[i], tc.want[i])
				}
				if _, err := Parse(got[i]); err != nil {
					t.Errorf("message %d does not parse: %v", i, err)
				}
			}
		})
	}
}

// Errors name the line of the file, counting the blank lines a person
// sees in an editor.
func TestSplitFileErrorLines(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"\n\nexported by the EHR\nMSH|^~\\&|A\n", "hl7.bad_segment at line 3: text before the first MSH segment"},
		{"FHS|^~\\&\r\nBHS|^~\\&\r\n\r\nnot a segment\r\nMSH|^~\\&|A\r\n", "hl7.bad_segment at line 4: text before the first MSH segment"},
		{"FHS|^~\\&\nMSH|^~\\&|A\nBTS|1\n\n\njunk between batches\nFTS|1\n", "hl7.bad_segment at line 6: segment outside any message in the batch"},
	}
	for _, tc := range tests {
		_, err := SplitFile([]byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("SplitFile(%q) error = %v, want %s", tc.in, err, tc.want)
		}
	}
}

func TestSplitFileMessagesDoNotShareStorage(t *testing.T) {
	msgs, err := SplitFile([]byte("MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\rPID|2\r"))
	if err != nil || len(msgs) != 2 {
		t.Fatalf("SplitFile = %q, %v", msgs, err)
	}
	second := bytes.Clone(msgs[1])
	_ = append(msgs[0], "ZZZ|overwrite"...)
	if !bytes.Equal(msgs[1], second) {
		t.Fatalf("appending to the first message changed the second: %q", msgs[1])
	}
}
