package engine_test

// The forged-writer rows of the fault matrix: senders without the right
// credential, over HTTP and over mutual-TLS MLLP.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/testpki"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/topics"
)

const faultToken = "batch-token-for-fault-tests"

// faultPost posts msg to /hl7/iface with token (none when "") and returns
// the status and the ACK in the body.
func faultPost(t *testing.T, addr, iface, token string, msg []byte) (int, hl7v2.ACK) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/hl7/"+iface, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "x-application/hl7-v2+er7")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	ack, err := hl7v2.ParseACK(body)
	if err != nil {
		t.Fatalf("POST /hl7/%s answered %d with a body that is not an ACK: %v", iface, resp.StatusCode, err)
	}
	return resp.StatusCode, ack
}

// An ehr interface under mutual TLS that accepts only CN=ehr.hospital over
// MLLP, and token "batch" over HTTP; a lab-results interface not written
// over HTTP. Each forged writer is refused (401 or 403 over HTTP, AR over
// MLLP), nothing of theirs is stored on any topic or delivered, and each
// refusal is on careflow.audit as writer_refused, saying who and why. The
// rightful writers, by both ways in, are delivered.
func TestFaultForgedWriters(t *testing.T) {
	t.Parallel() // its engine is its own; the timing-sensitive destination rows run alone
	fe := newFaultEstate(t)
	dir := t.TempDir()
	ca := testpki.NewCA(t, "careflow writers CA")
	srvCert, srvKey := testpki.WritePEM(t, dir, "careflow", ca.Issue(t, testpki.Leaf{CommonName: "careflow"}))
	fe.EHRExtra = fmt.Sprintf(`    tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
    http: true
    writers:
      certificates: ["CN=ehr.hospital"]
      tokens: [{name: batch, sha256: %s}]
`, srvCert, srvKey, ca.WriteCA(t, dir, "ca"), sha(faultToken))
	fe.Inbound = fmt.Sprintf(`  - name: lab-results
    transport: mllp
    listen: %s
    accept:
      message_types: ["ORU^R01"]
`, fe.LabResults)
	lab := startFaultLab(t, fe.Lab, labAlwaysAA)
	eng := startEngine(t, fe.config(t), t.TempDir())
	tail := newFaultTail(t, eng)
	mllpAs := func(cn string) *mllp.Client {
		cert := ca.Issue(t, testpki.Leaf{CommonName: cn})
		return &mllp.Client{Addr: fe.EHR, TLSConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}}
	}

	// The rightful writers first: the way in works.
	if status, ack := faultPost(t, eng.HTTPAddr(), "ehr", faultToken, orm("FW", "FW-HTTP", "PL-FW-HTTP")); status != 200 || ack.Code != hl7v2.AckAA {
		t.Fatalf("POST with the batch token: %d %s, want 200 AA", status, ack.Code)
	}
	ehr := mllpAs("ehr.hospital")
	defer ehr.Close()
	faultSend(t, ehr, orm("FW", "FW-MLLP", "PL-FW-MLLP"), "AA")
	raw0, dlq0 := faultRecords(t, eng, topics.Raw), faultRecords(t, eng, topics.DeadLetter(topics.StageIngest))

	refusals := []struct {
		name string
		try  func(t *testing.T)
		// the audit record it must leave
		entity, agentType, agentWho, detail, reason string
	}{
		{
			name: "POST without a token",
			try: func(t *testing.T) {
				if status, ack := faultPost(t, eng.HTTPAddr(), "ehr", "", orm("FW", "FW-NOTOKEN", "PL-FORGED-1")); status != 401 || ack.Code != hl7v2.AckAR {
					t.Fatalf("%d %s, want 401 AR", status, ack.Code)
				}
			},
			entity: "ehr", agentType: audit.AgentAddress, detail: "http", reason: "needs a bearer token",
		},
		{
			name: "POST with a wrong token",
			try: func(t *testing.T) {
				if status, ack := faultPost(t, eng.HTTPAddr(), "ehr", "guessed", orm("FW", "FW-BADTOKEN", "PL-FORGED-2")); status != 401 || ack.Code != hl7v2.AckAR {
					t.Fatalf("%d %s, want 401 AR", status, ack.Code)
				}
			},
			entity: "ehr", agentType: audit.AgentAddress, detail: "http", reason: "bearer token is not one",
		},
		{
			name: "MLLP with a certificate from the right CA for CN=other",
			try: func(t *testing.T) {
				c := mllpAs("other")
				defer c.Close()
				if ack := send(t, c, orm("FW", "FW-OTHER", "PL-FORGED-3")); ack.Code != hl7v2.AckAR || ack.ControlID != "FW-OTHER" {
					t.Fatalf("%s for %q, want AR for FW-OTHER", ack.Code, ack.ControlID)
				}
			},
			entity: "ehr", agentType: audit.AgentCertificate, agentWho: "CN=other", detail: "mllp", reason: "client certificate may not write",
		},
		{
			name: "POST to an interface not written over HTTP",
			try: func(t *testing.T) {
				msg := []byte("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|FW-ORU|P|2.5\rPID|1||FW^^^HOSP^MR\r")
				if status, ack := faultPost(t, eng.HTTPAddr(), "lab-results", "", msg); status != 403 || ack.Code != hl7v2.AckAR {
					t.Fatalf("%d %s, want 403 AR", status, ack.Code)
				}
			},
			entity: "lab-results", agentType: audit.AgentAddress, detail: "http", reason: "not written over HTTP",
		},
	}
	for _, r := range refusals {
		t.Run(r.name, r.try)
	}

	// Nothing of the forged writers is stored: not on careflow.raw, not as
	// a dead letter.
	if raw, dlq := faultRecords(t, eng, topics.Raw)-raw0, faultRecords(t, eng, topics.DeadLetter(topics.StageIngest))-dlq0; raw != 0 || dlq != 0 {
		t.Fatalf("refused writers left %d records on careflow.raw and %d on careflow.dlq.ingest", raw, dlq)
	}
	tail.settle([]faultSent{{ehrKey("FW-HTTP"), []string{"lab"}}, {ehrKey("FW-MLLP"), []string{"lab"}}}, 20*time.Second)
	var got []string
	for _, m := range lab.seen() {
		got = append(got, m.Get("ORC-2.1"))
	}
	if strings.Join(got, ",") != "PL-FW-HTTP,PL-FW-MLLP" {
		t.Fatalf("lab was sent %v, want only the rightful writers' PL-FW-HTTP, PL-FW-MLLP", got)
	}

	// Each refusal is audited once, saying who and why.
	var refused []avro.AuditEvent
	await.For(t, 10*time.Second, 20*time.Millisecond, func() error {
		tail.poll()
		refused = nil
		for _, rec := range tail.recs[topics.Audit] {
			var ev avro.AuditEvent
			if err := eng.Serde().Decode(rec.Value, &ev); err != nil {
				return err
			}
			if ev.Type == audit.TypeWriterRefused {
				refused = append(refused, ev)
			}
		}
		if len(refused) < len(refusals) {
			return fmt.Errorf("%d writer_refused audit records, want %d", len(refused), len(refusals))
		}
		return nil
	})
	if len(refused) != len(refusals) {
		t.Fatalf("%d writer_refused audit records, want %d: %+v", len(refused), len(refusals), refused)
	}
	for _, r := range refusals {
		found := 0
		for _, ev := range refused {
			if ev.EntityWhat == r.entity && ev.AgentType == r.agentType && ev.EntityDetail == r.detail &&
				strings.Contains(ev.OutcomeDesc, r.reason) && (r.agentWho == "" || ev.AgentWho == r.agentWho) &&
				ev.Count == 1 && ev.Outcome == avro.AuditSeriousFailure && ev.AgentNetwork == "127.0.0.1" {
				found++
			}
		}
		if found != 1 {
			t.Errorf("%s: %d audit records match %s/%s/%s %q, want 1; have %+v", r.name, found, r.entity, r.agentType, r.detail, r.reason, refused)
		}
	}
}
