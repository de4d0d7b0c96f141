package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages/conformance"
	"github.com/careflow-health/careflow/topics"
)

// withRules gives the "ehr" and "web" interfaces ack: validated with a
// rule that ADT messages carry PID-5 (the patient's name).
func withRules(t *testing.T) func(*Config) {
	k, err := conformance.New(conformance.Rules{
		MessageTypes: []string{"ADT^*"},
		Required:     map[string][]string{"ADT^*": {"PID-5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) {
		for i := range c.Interfaces {
			if c.Interfaces[i].Name != "small" { // small stays ack: commit
				c.Interfaces[i].Rules = k
			}
		}
	}
}

// nameless is adt_a01.hl7 (or its enhanced-mode twin) without PID-5.
func nameless(t *testing.T, file string) []byte {
	return bytes.Replace(fixture(t, file), []byte("||TEST^PATIENT||"), []byte("||||"), 1)
}

// ack: validated answers after the rules ran: AA when the message passes;
// AE with an ERR naming the rule's 0357 code and location when its content
// fails them, AR when its type is not taken; CA in enhanced mode, whose
// commit ACK means stored. Every one of them is on careflow.raw, so the
// refused ones reach validate's dead letters. An ack: commit interface
// answers AA for the same message.
func TestAckValidated(t *testing.T) {
	h := newHarness(t, withRules(t))
	tests := []struct {
		name, iface string
		msg         []byte
		code        hl7v2.AckCode
		err0357     string
		erl         string // ERR-2 (ERL) as written: segment^sequence^field^repetition[^component]
	}{
		{"passes", "ehr", fixture(t, "adt_a01.hl7"), hl7v2.AckAA, "", ""},
		{"no PID-5", "ehr", nameless(t, "adt_a01.hl7"), hl7v2.AckAE, "101", "PID^1^5^1"},
		// Enhanced mode: the commit ACK says stored; the rules' verdict
		// belongs to the application acknowledgement.
		{"no PID-5, enhanced mode", "ehr", nameless(t, "adt_a01_enhanced.hl7"), hl7v2.AckCA, "", ""},
		{"type not accepted", "ehr", bytes.Replace(fixture(t, "adt_a01.hl7"), []byte("ADT^A01^ADT_A01|MSG00001"), []byte("ORU^R01|MSG00009"), 1), hl7v2.AckAR, "200", "MSH^1^9^1^1"},
		{"ack: commit takes it", "small", nameless(t, "adt_a01.hl7"), hl7v2.AckAA, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reply, err := h.mllpClient(t, tc.iface).Send(context.Background(), tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			ack, err := hl7v2.ParseACK(reply)
			if err != nil {
				t.Fatalf("reply is not an ACK: %v\n%q", err, reply)
			}
			hdr, _ := hl7v2.PeekHeader(tc.msg)
			if ack.Code != tc.code || ack.ControlID != hdr.ControlID {
				t.Fatalf("ACK %s for %s, want %s for it\n%q", ack.Code, ack.ControlID, tc.code, reply)
			}
			if tc.err0357 == "" {
				if len(ack.Errors) != 0 {
					t.Fatalf("a positive ACK with ERR %+v", ack.Errors)
				}
				return
			}
			if len(ack.Errors) != 1 || ack.Errors[0].Code != tc.err0357 {
				t.Fatalf("ERR %+v, want one with code %s", ack.Errors, tc.err0357)
			}
			if !bytes.Contains(reply, []byte("\rERR||"+tc.erl+"|"+tc.err0357+"^")) {
				t.Errorf("ERR segment does not read ERR||%s|%s^...:\n%q", tc.erl, tc.err0357, reply)
			}
			if bytes.Contains(reply, []byte("TEST")) || bytes.Contains(reply, []byte("12345")) {
				t.Errorf("the AE quotes the patient:\n%q", reply)
			}
		})
	}
	// Every message is stored, the rejected ones too.
	recs := h.consume(t, topics.Raw, len(tests))
	ids := map[string]bool{}
	for _, r := range recs {
		ids[header(r, topics.HeaderMessageID)] = true
	}
	if len(ids) != len(tests) {
		t.Fatalf("%d distinct messages on careflow.raw, want %d", len(ids), len(tests))
	}
	if got := testutil.ToFloat64(h.stage.metrics.messages.WithLabelValues("ehr", resultInvalid)); got != 2 {
		t.Errorf("careflow_ingest_messages_total{result=invalid} = %v, want 2", got)
	}
}

// Over HTTP the AE comes with 422: stored, but not taken.
func TestAckValidatedOverHTTP(t *testing.T) {
	h := newHarness(t, withRules(t))
	srv := httptest.NewServer(h.stage.HTTPHandler())
	defer srv.Close()
	for _, tc := range []struct {
		body   []byte
		status int
		code   hl7v2.AckCode
	}{
		{fixture(t, "adt_a01.hl7"), http.StatusOK, hl7v2.AckAA},
		{nameless(t, "adt_a01.hl7"), http.StatusUnprocessableEntity, hl7v2.AckAE},
	} {
		resp, err := http.Post(srv.URL+"/hl7/web", ContentTypeER7, bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ack, err := hl7v2.ParseACK(body)
		if resp.StatusCode != tc.status || err != nil || ack.Code != tc.code {
			t.Errorf("POST: %d %s (%v), want %d %s", resp.StatusCode, strings.TrimSpace(string(body)), err, tc.status, tc.code)
		}
	}
	h.consume(t, topics.Raw, 2)
}
