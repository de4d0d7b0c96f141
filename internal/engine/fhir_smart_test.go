package engine_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages/route"
)

// Issue 12: a FHIR destination configured with smart: gets its bearer
// token by SMART Backend Services. The authorisation server checks each
// client assertion (signed with the key in smart.key_file, iss = sub =
// client_id, aud = its token URL); the FHIR server refuses requests
// without its token; every event is delivered, and the token is fetched
// once for all of them.
func TestFHIRDestinationSMART(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "smart.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var tokenRequests atomic.Int64
	var auth *httptest.Server
	auth = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenRequests.Add(1)
		_ = r.ParseForm()
		_, err := jwt.Parse(r.PostForm.Get("client_assertion"), func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
			jwt.WithValidMethods([]string{"ES384"}), jwt.WithIssuer("careflow-test"), jwt.WithSubject("careflow-test"),
			jwt.WithAudience(auth.URL+"/token"), jwt.WithExpirationRequired())
		if err != nil || r.PostForm.Get("grant_type") != "client_credentials" || !strings.Contains(r.PostForm.Get("scope"), "system/Patient.write") {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"granted-1","token_type":"bearer","expires_in":300}`)
	}))
	defer auth.Close()
	var delivered atomic.Int64
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer granted-1" {
			http.Error(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}`, http.StatusUnauthorized)
			return
		}
		var b struct{ Entry []json.RawMessage }
		_ = json.NewDecoder(r.Body).Decode(&b)
		delivered.Add(1)
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprint(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[]}`)
	}))
	defer store.Close()

	est := newFHIREstate(t, store.URL)
	yaml := fmt.Sprintf(fhirEstateYAML, est.Admin, est.HTTP, filepath.Join(dir, "jwks.json"), est.LabResults, est.EHRResults, est.EHRADT, store.URL)
	yaml = strings.Replace(yaml, "    breaker: {failures: 3, open_for: 1s}\n", "    breaker: {failures: 3, open_for: 1s}\n"+
		"    smart: {token_url: \""+auth.URL+"/token\", client_id: careflow-test, key_file: "+keyFile+", key_id: k1, scopes: [system/Patient.write, system/Encounter.write]}\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), est.issuer.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "careflow.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatal(err)
	}
	startEngine(t, cfg, "")
	lab := &mllp.Client{Addr: est.LabResults, ACKTimeout: 10 * time.Second}
	defer lab.Close()
	const n = 4
	for i := range n {
		if ack := send(t, lab, labADT("A08", nhs(60+i), fmt.Sprintf("S6%d", i), fmt.Sprintf("SMART%d", i))); ack.Code != hl7v2.AckAA {
			t.Fatalf("lab-results answered %s", ack.Code)
		}
	}
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		if d := delivered.Load(); d != n {
			return fmt.Errorf("%d of %d delivered", d, n)
		}
		return nil
	})
	if got := tokenRequests.Load(); got != 1 {
		t.Errorf("%d token requests for %d deliveries, want 1 (the token is cached)", got, n)
	}
}
