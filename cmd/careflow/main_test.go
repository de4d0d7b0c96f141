package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheck(t *testing.T) {
	code, out, _ := runCLI("check", "../../examples/demo/careflow.yaml")
	if code != 0 || !strings.Contains(out, "ok (5 inbound, 5 destinations") {
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
	// A source-of-truth matrix naming an unknown system and an unknown
	// field is refused, each at its line.
	yaml = strings.Replace(yaml, "labs", "lab", 1)
	yaml = strings.Replace(yaml, "'event.message_type =='", "'true'", 1)
	yaml += "ownership:\n  version: 1\n  demographics:\n    address: {owners: [ehrr]}\n    telecomm: {owners: [ehr]}\n"
	if err := os.WriteFile(bad, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI("check", bad)
	if code != 1 {
		t.Fatalf("check of a bad matrix exited %d, want 1", code)
	}
	for _, want := range []string{bad + ":16: ownership.demographics.address.owners[0]: no inbound interface is called \"ehrr\" (did you mean \"ehr\"?)",
		bad + ":17: ownership.demographics.telecomm: unknown key (did you mean \"telecom\"?)"} {
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
		{"run", "--kafka-log-level", "loud"},
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

	// A batch file is unwrapped, as careflow load reads it; a file with
	// text before its first MSH is refused whole, naming the segment.
	batch := filepath.Join(t.TempDir(), "batch.hl7")
	junk := filepath.Join(t.TempDir(), "junk.hl7")
	if err := os.WriteFile(batch, []byte("FHS|^~\\&\nBHS|^~\\&\n"+msgs+"BTS|2\nFTS|1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("exported by the EHR\n"+msgs), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI("send", "--to", ln.Addr().String(), batch, junk)
	for _, want := range []string{"batch.hl7 #1: AA control id M1", "batch.hl7 #2: AE control id M2", "junk.hl7: no message sent: hl7.bad_segment at line 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("send output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "junk.hl7 #") || code != 1 {
		t.Fatalf("a refused file's messages were sent, or exit %d:\n%s", code, out)
	}
}

// TestCheckRouteTypes: `careflow check` type-checks route conditions, so
// the typos that used to pass it and then fail (or never match) at run
// time exit 1, each named at its `when` key's line on one line of stderr.
func TestCheckRouteTypes(t *testing.T) {
	routes := []struct{ when, want string }{
		{`'event.message_type in ["ORM", "OML"]'`, ""}, // valid: not reported
		{`'event.messag_type == "ORM"'`, "undefined field 'messag_type' (did you mean 'message_type'?) at column 6"},
		{`'event.message_type == 1'`, "found no matching overload for '==' applied to '(string, int)' at column 20"},
		{`'event.message_type'`, "route condition must return bool, not string: compare it, e.g. `event.message_type == \"ADT\"`"},
		{">-\n      event.message_type == \"ORU\" &&\n      event.orders.exists(o, o.result_stat == \"F\")", "undefined field 'result_stat' (did you mean 'result_status'?) at column 56"}, // of the folded line
		{`'event.encounter != null && event.encounter.patient_class == "I"'`, ""},
	}
	yaml := "inbound:\n  - name: ehr\n    transport: mllp\n    listen: 127.0.0.1:2575\ndestinations:\n  - name: lab\n    transport: mllp\n    address: 127.0.0.1:6661\nroutes:\n"
	var wants []string
	for i, r := range routes {
		yaml += fmt.Sprintf("  - name: r%d\n    destination: lab\n", i)
		line := strings.Count(yaml, "\n") + 1
		yaml += "    when: " + r.when + "\n"
		if r.want != "" {
			wants = append(wants, fmt.Sprintf(":%d: routes[%d].when: %s", line, i, r.want))
		}
	}
	path := filepath.Join(t.TempDir(), "careflow.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("check", path)
	if code != 1 {
		t.Fatalf("check exited %d (stdout %q), want 1", code, out)
	}
	for _, w := range wants {
		if !strings.Contains(errOut, path+w+"\n") {
			t.Errorf("stderr lacks the line\n %s%s\nin:\n%s", path, w, errOut)
		}
	}
	for _, valid := range []string{"routes[0].when", "routes[5].when"} {
		if strings.Contains(errOut, valid) {
			t.Errorf("a valid condition is reported (%s):\n%s", valid, errOut)
		}
	}
	if strings.Contains(errOut, " | ") || strings.Contains(errOut, "<input>") {
		t.Errorf("the caret lines belong to the engine's log, not to check's one-line report:\n%s", errOut)
	}
}
