package hl7v2

import "testing"

const oru = "MSH|^~\\&|LAB|LABFAC|EHR|HOSP|20240105120000-0500||ORU^R01^ORU_R01|LAB0001|P|2.5.1|||AL|NE||UNICODE UTF-8\r" +
	"PID|1||MRN001^^^HOSP&1.2.3&ISO^MR~55500^^^SSA^SS||TEST^PATIENT^Q||19800101|F\r" +
	"OBR|1|ORD1|FIL1|CBC^Complete blood count^L\r" +
	"OBX|1|NM|WBC^White cells^L||7.2|10*9/L|4.0-11.0|N|||F\r" +
	"OBX|2|ST|COMMENT^Comment^L||Value \\T\\ more\\.br\\next line \\S\\ \\F\\ \\R\\ \\E\\||||||F\r" +
	"OBX|3|NM|PLT^Platelets^L||250|10*9/L|150-400|N|||F\r"

func TestGetPaths(t *testing.T) {
	m, err := Parse([]byte(oru))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{"MSH-1", "|"},
		{"MSH-2", "^~\\&"},
		{"MSH-3", "LAB"},
		{"MSH-7", "20240105120000-0500"},
		{"MSH-9", "ORU^R01^ORU_R01"},
		{"MSH-9.1", "ORU"},
		{"MSH-9.2", "R01"},
		{"MSH-9.3", "ORU_R01"},
		{"MSH-9.4", ""},
		{"MSH-12", "2.5.1"},
		{"MSH-18", "UNICODE UTF-8"},
		{"PID-3", "MRN001^^^HOSP&1.2.3&ISO^MR~55500^^^SSA^SS"},
		{"PID-3.1", "MRN001"},
		{"PID-3[1].1", "MRN001"},
		{"PID-3[2].1", "55500"},
		{"PID-3[2].4", "SSA"},
		{"PID-3.4", "HOSP&1.2.3&ISO"},
		{"PID-3.4.1", "HOSP"},
		{"PID-3.4.2", "1.2.3"},
		{"PID-3[1].4.3", "ISO"},
		{"PID-3[2].4.1", "SSA"},
		{"PID-3[2].4.2", ""},
		{"PID-5.2", "PATIENT"},
		{"PID[1]-5.1", "TEST"},
		{"OBX-5", "7.2"},
		{"OBX[1]-5", "7.2"},
		{"OBX[3]-5", "250"},
		{"OBX[2]-5", "Value & more\nnext line ^ | ~ \\"},
		{"OBX[2]-3.2", "Comment"},
		// Out of range or absent: "".
		{"OBX[4]-5", ""},
		{"PID-3[3].1", ""},
		{"PID-3[3]", ""},
		{"PID-3.9", ""},
		{"PID-3.1.2", ""},
		{"PID-99", ""},
		{"PV1-2", ""},
		{"ZZZ-1", ""},
		// Malformed paths: "".
		{"", ""},
		{"PID", ""},
		{"PID-", ""},
		{"PID-0", ""},
		{"PID-3[0]", ""},
		{"PID-3.0", ""},
		{"PID-3.", ""},
		{"PID-3[2", ""},
		{"PID-x", ""},
		{"PID-3.1.1.1", ""},
		{"OBX[0]-5", ""},
		{"-5", ""},
		{"PID-3[99999999999999999999]", ""},
	}
	for _, tc := range tests {
		if got := m.Get(tc.path); got != tc.want {
			t.Errorf("Get(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	if raw := string(m.GetRaw("OBX[2]-5")); raw != "Value \\T\\ more\\.br\\next line \\S\\ \\F\\ \\R\\ \\E\\" {
		t.Errorf("GetRaw kept escapes wrong: %q", raw)
	}
	if m.GetRaw("PID-99") != nil && len(m.GetRaw("PID-99")) != 0 {
		t.Error("GetRaw of an absent field is not empty")
	}
}

func TestGetRawDoesNotAllocate(t *testing.T) {
	m, err := Parse([]byte(oru))
	if err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		_ = m.GetRaw("PID-3[2].4")
		_ = m.GetRaw("OBX[3]-5")
		_ = m.GetRaw("MSH-9.2")
	})
	if n != 0 {
		t.Errorf("GetRaw allocates %v times", n)
	}
	n = testing.AllocsPerRun(100, func() { _ = m.Get("PID-3[2].4") })
	if n > 1 {
		t.Errorf("Get without escapes allocates %v times, want at most the string", n)
	}
	n = testing.AllocsPerRun(100, func() { _ = m.Get("OBX[2]-5") })
	if n > 1 {
		t.Errorf("Get with escapes allocates %v times, want 1", n)
	}
}

func TestHeader(t *testing.T) {
	m, err := Parse([]byte(oru))
	if err != nil {
		t.Fatal(err)
	}
	got := m.Header()
	want := Header{FieldSep: "|", EncodingChars: "^~\\&", SendingApplication: "LAB", SendingFacility: "LABFAC",
		ReceivingApplication: "EHR", ReceivingFacility: "HOSP", DateTime: "20240105120000-0500", MessageType: "ORU",
		TriggerEvent: "R01", MessageStructure: "ORU_R01", ControlID: "LAB0001", ProcessingID: "P", Version: "2.5.1",
		AcceptAckType: "AL", AppAckType: "NE", Charset: "UNICODE UTF-8"}
	if got != want {
		t.Errorf("Header() =\n%+v\nwant\n%+v", got, want)
	}
	if n := testing.AllocsPerRun(50, func() { _ = m.Header() }); n > 1 {
		t.Errorf("Header allocates %v times, want 1", n)
	}
}

func TestHeaderQuirks(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want func(h Header) bool
	}{
		{"2.1 trigger only in EVN", "MSH|^~\\&|REG|H|||198807051230||ADT|0001|P|2.1\rEVN|A04|198807051230\r",
			func(h Header) bool { return h.MessageType == "ADT" && h.TriggerEvent == "A04" && h.Version == "2.1" }},
		{"composite sender kept", "MSH|^~\\&|LAB^1.2.3^ISO|FAC^2.3.4^ISO|||2024||ACK|1|P^T|2.5^USA\r",
			func(h Header) bool {
				return h.SendingApplication == "LAB^1.2.3^ISO" && h.ProcessingID == "P^T" && h.Version == "2.5"
			}},
		{"TS precision dropped", "MSH|^~\\&|A|B|C|D|200401011200^M||ADT^A01|1|P|2.3\r",
			func(h Header) bool { return h.DateTime == "200401011200" }},
		{"escaped control id", "MSH|^~\\&|A|B|C|D|2024||ADT^A01|X\\F\\1|P|2.5\r",
			func(h Header) bool { return h.ControlID == "X|1" }},
	}
	for _, tc := range tests {
		m, err := Parse([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if h := m.Header(); !tc.want(h) {
			t.Errorf("%s: Header() = %+v", tc.name, h)
		}
	}
}

func TestPeekHeader(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		control   string
		wantField byte
	}{
		{"valid", []byte(oru), "LAB0001", '|'},
		{"bad encoding chars", []byte("MSH|^^^^|A|B|C|D|2024||ADT^A01|C42|P|2.5\rPID|\r"), "C42", '|'},
		{"prefix garbage", []byte("\x00\x01garbageMSH*^~\\&*A*B*C*D*2024**ADT^A01*C7*P*2.4\r"), "C7", '*'},
		{"no MSH", []byte("hello"), "", '|'},
		{"empty", nil, "", '|'},
		{"MSH only", []byte("MSH"), "", '|'},
		{"MSH with line break sep", []byte("MSH\r"), "", '|'},
	}
	for _, tc := range tests {
		h, d := PeekHeader(tc.in)
		if h.ControlID != tc.control || d.Field != tc.wantField {
			t.Errorf("%s: PeekHeader control %q sep %q, want %q %q", tc.name, h.ControlID, d.Field, tc.control, tc.wantField)
		}
	}
}
