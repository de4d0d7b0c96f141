package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/testpki"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/topics"
)

const batchToken = "batch-token-7f3a"

// writerHarness is a stage whose interfaces each guard writing another way.
type writerHarness struct {
	*harness
	idp *testpki.Issuer
	ca  *testpki.CA
}

func newWriterHarness(t *testing.T) *writerHarness {
	t.Helper()
	idp := testpki.NewIssuer(t, "https://idp.test")
	ca := testpki.NewCA(t, "careflow test senders CA")
	jwtv, err := httpx.NewJWTVerifier(context.Background(), httpx.JWTConfig{Issuer: idp.URL, Audience: "careflow", JWKS: idp.JWKS()})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &httpx.StaticTokens{}
	tokens.AddToken("batch", sha256.Sum256([]byte(batchToken)))
	server := ca.Issue(t, testpki.Leaf{CommonName: "careflow"})
	h := newHarness(t, func(c *Config) {
		c.Interfaces = append(c.Interfaces,
			Interface{Name: "guarded", Writers: Writers{Tokens: tokens, JWT: jwtv, Scope: "careflow/guarded.write"}},
			Interface{Name: "elsewhere", Listen: "127.0.0.1:0", HTTP: true,
				Writers: Writers{Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
			Interface{Name: "winpath", Listen: "127.0.0.1:0", HTTP: true,
				Writers: Writers{SendingApplications: []string{"WINPATH"}, Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}},
			Interface{Name: "mtls", Listen: "127.0.0.1:0", TLSConfig: &tls.Config{
				Certificates: []tls.Certificate{server}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert},
				Writers: Writers{Certificates: []string{"CN=lab.hospital", "DNS:lab2.hospital"}}},
			Interface{Name: "certs", Writers: Writers{Certificates: []string{"CN=portal-app"}}},
			// Trusts only its own CA, narrower than the HTTP listener's.
			Interface{Name: "narrow", Writers: Writers{Certificates: []string{"CN=portal-app"},
				CertificateCAs: testpki.NewCA(t, "the narrow interface's CA").Pool()}},
		)
		// An MLLP-only interface: not writable over HTTP.
		c.Interfaces[0].HTTP = false
	})
	return &writerHarness{harness: h, idp: idp, ca: ca}
}

func post(t *testing.T, url, token string, body []byte, client *http.Client) (int, http.Header, hl7v2.ACK) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ack, err := hl7v2.ParseACK(b)
	if err != nil {
		t.Fatalf("status %d, reply is not an ACK (%v): %q", resp.StatusCode, err, b)
	}
	return resp.StatusCode, resp.Header, ack
}

func TestHTTPWriters(t *testing.T) {
	h := newWriterHarness(t)
	srv := httptest.NewServer(h.stage.HTTPHandler())
	defer srv.Close()
	msg := fixture(t, "adt_a01.hl7")
	winpath := bytes.Replace(msg, []byte("|EPIC|"), []byte("|WINPATH|"), 1)
	good := h.idp.Token(t, "careflow", "lab-system", "careflow/guarded.write", time.Minute, nil)
	tests := []struct {
		name, path, token string
		body              []byte
		status            int
		ack               hl7v2.AckCode
		writer            string // on the raw record when stored
	}{
		{"MLLP-only interface over HTTP", "/hl7/ehr", "", msg, 403, hl7v2.AckAR, ""},
		{"no credential", "/hl7/guarded", "", msg, 401, hl7v2.AckAR, ""},
		{"unknown static token", "/hl7/guarded", "guess", msg, 401, hl7v2.AckAR, ""},
		{"static token", "/hl7/guarded", batchToken, msg, 200, hl7v2.AckAA, "token:batch"},
		{"JWT with the scope", "/hl7/guarded", good, msg, 200, hl7v2.AckAA, "jwt:lab-system"},
		{"JWT without the scope", "/hl7/guarded", h.idp.Token(t, "careflow", "lab-system", "careflow/ehr.write", time.Minute, nil), msg, 403, hl7v2.AckAR, ""},
		{"expired JWT", "/hl7/guarded", h.idp.Token(t, "careflow", "lab-system", "careflow/guarded.write", -time.Minute, nil), msg, 401, hl7v2.AckAR, ""},
		{"JWT for another audience", "/hl7/guarded", h.idp.Token(t, "portal", "lab-system", "careflow/guarded.write", time.Minute, nil), msg, 401, hl7v2.AckAR, ""},
		{"JWT signed by someone else", "/hl7/guarded", testpki.NewIssuer(t, "https://idp.test").Token(t, "careflow", "x", "careflow/guarded.write", time.Minute, nil), msg, 401, hl7v2.AckAR, ""},
		{"address outside the allow-list", "/hl7/elsewhere", "", msg, 403, hl7v2.AckAR, ""},
		{"sending application outside the allow-list", "/hl7/winpath", "", msg, 403, hl7v2.AckAR, ""},
		// Refused before it is read: not even dead-lettered.
		{"sending application outside the allow-list, unparseable", "/hl7/winpath", "", append(bytes.Clone(msg), "?? not a segment|x\r"...), 403, hl7v2.AckAR, ""},
		{"sending application in the allow-list", "/hl7/winpath", "", winpath, 200, hl7v2.AckAA, "address:127.0.0.1"},
		{"certificate interface without a certificate", "/hl7/certs", "", msg, 401, hl7v2.AckAR, ""},
	}
	var stored []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, ack := post(t, srv.URL+tt.path, tt.token, tt.body, nil)
			if status != tt.status || ack.Code != tt.ack {
				t.Fatalf("status %d %s, want %d %s (%+v)", status, ack.Code, tt.status, tt.ack, ack)
			}
			if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("401 without a Bearer challenge: %q", hdr.Get("WWW-Authenticate"))
			}
			if status != 200 && (len(ack.Errors) == 0 || !strings.HasPrefix(ack.Errors[0].Text, "not authorised")) {
				t.Errorf("refusal without its reason: %+v", ack)
			}
			if tt.writer != "" {
				stored = append(stored, tt.writer)
			}
		})
	}
	// Only what was allowed is stored, with who wrote it.
	recs := h.consume(t, topics.Raw, len(stored))
	for i, r := range recs {
		var raw avro.RawMessage
		if err := h.serde.Decode(r.Value, &raw); err != nil {
			t.Fatal(err)
		}
		if raw.Writer != stored[i] {
			t.Errorf("record %d writer %q, want %q", i, raw.Writer, stored[i])
		}
	}
	h.consume(t, topics.DeadLetter(topics.StageIngest), 0)
	// Every refusal is audited; the two refusals of the same sender for the
	// same reason fold into one record (the second is pending in its
	// window), the others each have their own.
	audits := h.consume(t, topics.Audit, len(tests)-len(stored)-1)
	for _, r := range audits {
		var ev avro.AuditEvent
		if err := h.serde.Decode(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type != audit.TypeWriterRefused || ev.EntityType != audit.EntityInterface || ev.AgentNetwork != "127.0.0.1" || ev.OutcomeDesc == "" {
			t.Errorf("audit record %+v", ev)
		}
		// A valid JWT that lacks the scope is refused knowing who it was.
		if strings.Contains(ev.OutcomeDesc, "does not grant scope") && (ev.AgentType != audit.AgentJWT || ev.AgentWho != "lab-system") {
			t.Errorf("scope refusal audited as %s %q, want jwt lab-system", ev.AgentType, ev.AgentWho)
		}
	}
}

// Client certificates over HTTPS: the listener asks for one; the interface
// takes only the subjects it names.
func TestHTTPClientCertificates(t *testing.T) {
	h := newWriterHarness(t)
	srv := httptest.NewUnstartedServer(h.stage.HTTPHandler())
	srv.TLS = &tls.Config{ClientCAs: h.ca.Pool(), ClientAuth: tls.VerifyClientCertIfGiven,
		Certificates: []tls.Certificate{h.ca.Issue(t, testpki.Leaf{CommonName: "careflow"})}}
	srv.StartTLS()
	defer srv.Close()
	client := func(cn string) *http.Client {
		tc := &tls.Config{RootCAs: h.ca.Pool()}
		if cn != "" {
			tc.Certificates = []tls.Certificate{h.ca.Issue(t, testpki.Leaf{CommonName: cn})}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	msg := fixture(t, "adt_a01.hl7")
	for _, tc := range []struct {
		iface, cn string
		status    int
	}{{"certs", "portal-app", 200}, {"certs", "someone-else", 403}, {"certs", "", 401},
		// The listener's CA signed it, but this interface trusts another.
		{"narrow", "portal-app", 403}} {
		if status, _, _ := post(t, srv.URL+"/hl7/"+tc.iface, "", msg, client(tc.cn)); status != tc.status {
			t.Errorf("%s with certificate %q: status %d, want %d", tc.iface, tc.cn, status, tc.status)
		}
	}
	recs := h.consume(t, topics.Raw, 1)
	var raw avro.RawMessage
	if err := h.serde.Decode(recs[0].Value, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Writer != "certificate:CN=portal-app" {
		t.Errorf("writer %q", raw.Writer)
	}
}

func TestMLLPWriters(t *testing.T) {
	h := newWriterHarness(t)
	msg := fixture(t, "adt_a01.hl7")
	mtls := func(cn string) *mllp.Client {
		c := &mllp.Client{Addr: h.stage.Addr("mtls").String(), ACKTimeout: 5 * time.Second, TLSConfig: &tls.Config{
			RootCAs: h.ca.Pool(), Certificates: []tls.Certificate{h.ca.Issue(t, testpki.Leaf{CommonName: cn})}}}
		t.Cleanup(func() { c.Close() })
		return c
	}
	lab2 := &mllp.Client{Addr: h.stage.Addr("mtls").String(), ACKTimeout: 5 * time.Second, TLSConfig: &tls.Config{
		RootCAs: h.ca.Pool(), Certificates: []tls.Certificate{h.ca.Issue(t, testpki.Leaf{CommonName: "x", DNSNames: []string{"lab2.hospital"}})}}}
	t.Cleanup(func() { lab2.Close() })
	tests := []struct {
		name   string
		client *mllp.Client
		body   []byte
		want   hl7v2.AckCode
	}{
		{"address outside the allow-list", h.mllpClient(t, "elsewhere"), msg, hl7v2.AckAR},
		{"sending application outside the allow-list", h.mllpClient(t, "winpath"), msg, hl7v2.AckAR},
		{"certificate subject allowed", mtls("lab.hospital"), msg, hl7v2.AckAA},
		{"certificate SAN allowed", lab2, msg, hl7v2.AckAA},
		{"certificate of the right CA, wrong subject", mtls("other.hospital"), msg, hl7v2.AckAR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack := send(t, tt.client, tt.body)
			if ack.Code != tt.want {
				t.Fatalf("ACK %s, want %s (%+v)", ack.Code, tt.want, ack)
			}
			if tt.want == hl7v2.AckAR && ack.ControlID != "MSG00001" {
				t.Errorf("AR does not name the message (MSA-2 %q)", ack.ControlID)
			}
		})
	}
	recs := h.consume(t, topics.Raw, 2)
	var raw avro.RawMessage
	if err := h.serde.Decode(recs[0].Value, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Writer != "certificate:CN=lab.hospital" {
		t.Errorf("writer %q", raw.Writer)
	}
	h.consume(t, topics.Audit, 3)
}

// A message with no MSH-10 cannot be matched to its ACK or recognised when
// resent: AR with the location, and the bytes kept as a dead letter. Spaces
// or HL7's explicit null are no control id either.
func TestEmptyControlIDRejected(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"", "   ", `""`} {
		msg := bytes.Replace(fixture(t, "adt_a01.hl7"), []byte("|MSG00001|"), []byte("|"+id+"|"), 1)
		ack := send(t, h.mllpClient(t, "ehr"), msg)
		if ack.Code != hl7v2.AckAR || len(ack.Errors) == 0 || ack.Errors[0].Location != "MSH^1^10" && ack.Errors[0].Location != "MSH-10" {
			t.Fatalf("MSH-10 %q: ACK %+v, want AR with ERR at MSH-10", id, ack)
		}
		if ack.Errors[0].Code != "101" {
			t.Errorf("ERR code %q, want 101 (required field missing)", ack.Errors[0].Code)
		}
	}
	h.consume(t, topics.Raw, 0)
	for _, dl := range h.consume(t, topics.DeadLetter(topics.StageIngest), 3) {
		if c := header(dl, topics.HeaderDLQCode); c != CodeNoControlID {
			t.Errorf("dead letter code %q", c)
		}
	}
}
