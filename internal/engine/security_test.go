package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/testpki"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/stages/route"
	"github.com/careflow-health/careflow/topics"
)

const adminToken = "admin-token-for-tests"

// estateConfig writes the estate's configuration with extra top-level
// YAML (admin tokens, TLS) and loads it.
func estateConfig(t *testing.T, est estate, mutate func(yaml string) string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(estateYAML, est.EHR, est.LabResults, est.Lab, est.EHRResults, est.Portal, est.Admin, est.HTTP, est.BreakerOpenFor)
	yaml = mutate(yaml)
	path := filepath.Join(dir, "careflow.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// registerSchema posts schema under subject to the admin port.
func registerSchema(t *testing.T, client *http.Client, base, subject, schema, token string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"schema": schema})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/subjects/"+subject+"/versions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The admin port is read-only for anonymous clients: metrics, health and
// registry reads answer; a new subject or version needs the admin token;
// a version of careflow's own subject that drops a field is refused even
// with it; re-registering what is there is a read. Every change tried is
// audited.
func TestAdminRegistryWrites(t *testing.T) {
	est := newEstate(t)
	startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	cfg := estateConfig(t, est, func(y string) string {
		return strings.Replace(y, "admin: {listen: "+est.Admin+"}",
			"admin: {listen: "+est.Admin+", tokens: [{name: ops, sha256: "+sha(adminToken)+"}]}", 1)
	})
	eng := startEngine(t, cfg, t.TempDir())
	base := "http://" + eng.AdminAddr()
	for _, p := range []string{"/metrics", "/healthz", "/subjects", "/schemas/ids/1"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d, want 200 for anyone", p, resp.StatusCode)
		}
	}
	junk := `{"type": "record", "name": "Junk", "fields": [{"name": "a", "type": "string"}]}`
	raw := avro.Schemas()[avro.NameRawMessage]
	noPayload := strings.Replace(raw, `{"name": "payload", "type": "bytes", "default": "", "doc": "the message bytes, unmodified"},`, "", 1)
	cases := []struct {
		name, subject, schema, token string
		status                       int
	}{
		{"new subject, no token", "junk", junk, "", 401},
		{"new subject, wrong token", "junk", junk, "guess", 401},
		{"careflow's schema again, no token (a read)", avro.NameRawMessage, raw, "", 200},
		{"new subject with the admin token", "junk", junk, adminToken, 200},
		{"careflow.RawMessage without payload, admin token", avro.NameRawMessage, noPayload, adminToken, 409},
		{"careflow.RawMessage without payload, no token", avro.NameRawMessage, noPayload, "", 401},
	}
	for _, c := range cases {
		status, body := registerSchema(t, http.DefaultClient, base, c.subject, c.schema, c.token)
		if status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.status)
		}
	}
	resp, err := http.Get(base + "/subjects/" + avro.NameRawMessage + "/versions")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != "[1]" {
		t.Errorf("careflow.RawMessage versions = %s, want [1]: a refused version was stored", b)
	}
	// Audit: configuration loaded, four refusals (no token, a wrong token, the
	// field dropped, no token again), one write; counted by Count in case any fold.
	recs := readTopic(t, eng.Brokers(), topics.Audit, 5, 15*time.Second)
	types := map[string]int{}
	for _, r := range recs {
		var ev avro.AuditEvent
		if err := eng.Serde().Decode(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		types[ev.Type] += ev.Count
		if ev.Type == audit.TypeRegistryWrite && (ev.AgentWho != "ops" || ev.EntityWhat != "junk") {
			t.Errorf("registry write audited as %+v", ev)
		}
		if ev.Type == audit.TypeConfigurationLoaded && ev.EntityDetail != "sha256:"+cfg.SHA256 {
			t.Errorf("configuration audited as %+v", ev)
		}
	}
	if types[audit.TypeConfigurationLoaded] != 1 || types[audit.TypeRegistryWrite] != 1 || types[audit.TypeRegistryWriteRefused] != 4 {
		t.Errorf("audit by type = %v", types)
	}
}

// With no admin tokens, nobody writes to the registry over HTTP.
func TestAdminRegistryWritesOffWithoutTokens(t *testing.T) {
	est := newEstate(t)
	startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	eng := startEngine(t, est.config(t), t.TempDir())
	status, body := registerSchema(t, http.DefaultClient, "http://"+eng.AdminAddr(), "junk",
		`{"type": "record", "name": "Junk", "fields": []}`, "anything")
	if status != 403 || !strings.Contains(body, "no admin.tokens") {
		t.Errorf("%d %s, want 403 naming admin.tokens", status, body)
	}
}

// The admin port over TLS, and HTTP ingest turned off.
func TestAdminTLSAndHTTPOff(t *testing.T) {
	est := newEstate(t)
	startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	ca := testpki.NewCA(t, "careflow test admin CA")
	dir := t.TempDir()
	certFile, keyFile := testpki.WritePEM(t, dir, "admin", ca.Issue(t, testpki.Leaf{CommonName: "careflow"}))
	cfg := estateConfig(t, est, func(y string) string {
		y = strings.Replace(y, "admin: {listen: "+est.Admin+"}",
			"admin: {listen: "+est.Admin+", tls: {cert_file: "+certFile+", key_file: "+keyFile+"}}", 1)
		y = strings.Replace(y, "http: {listen: "+est.HTTP+"}", `http: {listen: ""}`, 1)
		return strings.Replace(y, "    http: true\n", "", 1)
	})
	eng := startEngine(t, cfg, t.TempDir())
	if eng.HTTPAddr() != "" {
		t.Errorf("HTTP ingest listening on %s with http.listen empty", eng.HTTPAddr())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	resp, err := client.Get("https://" + eng.AdminAddr() + "/healthz")
	if err != nil {
		t.Fatalf("admin over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz over TLS: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + eng.AdminAddr() + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && strings.Contains(string(b), "ok") {
			t.Error("admin answered plain HTTP with TLS configured")
		}
	}
	c := &mllp.Client{Addr: est.EHR}
	defer c.Close()
	if ack := send(t, c, adt("A01", "P1", "TLS1")); ack.Code != "AA" {
		t.Errorf("MLLP with HTTP off: %s", ack.Code)
	}
}
