package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"careflow/connectors/hl7v2"
	"careflow/connectors/mllp"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheck(t *testing.T) {
	code, out, _ := runCLI("check", "../../examples/demo/careflow.yaml")
	if code != 0 || !strings.Contains(out, "ok (2 inbound, 3 destinations") {
		t.Fatalf("check of the demo config: exit %d, %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	yaml := "inbound:\n  - name: ehr\n    transport: mllp\n    listen: 127.0.0.1:2575\ndestinations:\n  - name: lab\n    transport: mllp\n    address: 127.0.0.1:6661\nroutes:\n  - name: r\n    destination: labs\n    when: 'event.message_type =='\n"
	if err := os.WriteFile(bad, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI("check", bad)
	if code != 1 {
		t.Fatalf("check of a broken file exited %d, want 1", code)
	}
	for _, want := range []string{bad + ":11: routes[0].destination", `did you mean "lab"`, bad + ":12: routes[0].when"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("check output lacks %q:\n%s", want, errOut)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := [][]string{
		{},
		{"frobnicate"},
		{"stage"},
		{"stage", "teleport", "--config", "x"},
		{"send", "--to", "127.0.0.1:1"},
		{"check"},
	}
	for _, args := range tests {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("careflow %v exited %d, want 2 (usage)", args, code)
		}
	}
	// A stage copy needs an external Kafka and a shared registry.
	code, _, errOut := runCLI("stage", "validate", "--config", "../../examples/demo/careflow.yaml")
	if code != 2 || !strings.Contains(errOut, "external Kafka") {
		t.Fatalf("stage without brokers: exit %d, %q", code, errOut)
	}
}

// careflow send splits a file into messages and prints each ACK.
func TestSend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		m, err := hl7v2.Parse(append([]byte(nil), req.Payload...))
		if err != nil {
			return nil
		}
		code := hl7v2.AckAA
		if m.Get("MSH-10") == "M2" {
			code = hl7v2.AckAE
		}
		return hl7v2.BuildACK(m.Header(), m.Delimiters(), code, hl7v2.ACKOptions{ControlID: "A", Now: time.Now()})
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	file := filepath.Join(t.TempDir(), "two.hl7")
	msgs := "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|M1|P|2.5\nPID|1||1^^^H\n\nMSH|^~\\&|A|B|C|D|20240101||ADT^A08|M2|P|2.5\nPID|1||1^^^H\n"
	if err := os.WriteFile(file, []byte(msgs), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("send", "--to", ln.Addr().String(), file)
	if !strings.Contains(out, "#1: AA control id M1") || !strings.Contains(out, "#2: AE control id M2") {
		t.Fatalf("send output:\n%s", out)
	}
	if code != 1 || !strings.Contains(errOut, "1 message(s) not accepted") {
		t.Fatalf("send with one AE: exit %d, %q", code, errOut)
	}
}

func TestSplitMessages(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"MSH|a\rPID|1\r", 1},
		{"MSH|a\nPID|1\n\nMSH|b\r\nPID|2\r\n", 2},
		{"\n\nMSH|a\n", 1},
		{"", 0},
		{"FHS|^~\\&\nBHS|^~\\&\nMSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\nPID|1\nMSH|^~\\&|A|B|C|D|20240101||ADT^A08|2|P|2.5\nBTS|2\nFTS|1\n", 2},
	}
	for _, tc := range tests {
		got := SplitMessages([]byte(tc.in))
		if len(got) != tc.want {
			t.Errorf("SplitMessages(%q) = %d messages, want %d", tc.in, len(got), tc.want)
		}
		for _, m := range got {
			if !bytes.HasPrefix(m, []byte("MSH")) || bytes.Contains(m, []byte("BTS")) {
				t.Errorf("message %q is not one message", m)
			}
			if bytes.ContainsRune(m, '\n') {
				t.Errorf("message %q still has LF", m)
			}
		}
	}
}
