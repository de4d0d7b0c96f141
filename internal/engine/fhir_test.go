package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/internal/peer"
	"github.com/careflow-health/careflow/internal/testpki"
	"github.com/careflow-health/careflow/stages/route"
)

// fhirEstate is an engine with two FHIR interfaces (apps, other) whose
// writers are JWTs of one test issuer, the lab's MLLP results interface,
// the EHR's v2 inboxes (results, ADT) and a FHIR destination, store.
type fhirEstate struct {
	Admin, HTTP, LabResults, EHRResults, EHRADT string
	Store                                       string // the FHIR destination's base URL
	issuer                                      *testpki.Issuer
	dir                                         string
}

func newFHIREstate(t *testing.T, store string) *fhirEstate {
	port := func() string { return freeport.For(t) }
	return &fhirEstate{Admin: port(), HTTP: port(), LabResults: port(), EHRResults: port(), EHRADT: port(), Store: store,
		issuer: testpki.NewIssuer(t, "https://idp.test"), dir: t.TempDir()}
}

const fhirEstateYAML = `
kafka: {partitions: 3}
admin: {listen: %[1]s}
http: {listen: %[2]s}
auth:
  issuers:
    - {name: test-idp, issuer: "https://idp.test", audience: careflow, jwks_file: %[3]s}
identity:
  trust:
    - {type: NH, authority: NHS, check: nhs}
    - {type: MR, authority: HOSP}
inbound:
  - name: lab-results
    transport: mllp
    listen: %[4]s
  - name: apps
    transport: fhir
    writers: {jwt: {issuer: test-idp}}
  - name: other
    transport: fhir
    resources: [Observation]
    writers: {jwt: {issuer: test-idp}}
destinations:
  - {name: ehr-results, transport: mllp, address: %[5]s, hl7_version: "2.5.1"}
  - {name: ehr-adt, transport: mllp, address: %[6]s, hl7_version: "2.5.1"}
  - name: store
    transport: fhir
    url: %[7]s
    ack_timeout: 5s
    retry: {initial: 50ms, max: 500ms, multiplier: 2}
    breaker: {failures: 3, open_for: 1s}
routes:
  - {name: results-to-ehr, destination: ehr-results, when: 'event.message_type == "ORU"'}
  - {name: adt-to-ehr, destination: ehr-adt, when: 'event.message_type == "ADT" && event.provenance.source_interface == "apps"'}
  - {name: all-to-store, destination: store, when: 'event.message_type in ["ADT", "ORU"] && event.provenance.source_interface == "lab-results"'}
`

func (e *fhirEstate) config(t *testing.T) *config.Config {
	t.Helper()
	jwks := filepath.Join(e.dir, "jwks.json")
	if err := os.WriteFile(jwks, e.issuer.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.dir, "careflow.yaml")
	yaml := fmt.Sprintf(fhirEstateYAML, e.Admin, e.HTTP, jwks, e.LabResults, e.EHRResults, e.EHRADT, e.Store)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// token is a good token for interface iface with SMART scopes.
func (e *fhirEstate) token(t *testing.T, iface string, smart ...string) string {
	return e.issuer.Token(t, "careflow", "app-1", strings.Join(append([]string{"careflow/" + iface + ".write"}, smart...), " "), 5*time.Minute, nil)
}

func (e *fhirEstate) base(iface string) string { return "http://" + e.HTTP + "/fhir/" + iface }

type fhirAnswer struct {
	status int
	body   []byte
	header http.Header
}

// expression is the first OperationOutcome issue's code@expression.
func (a fhirAnswer) expression() string {
	var oo struct {
		Issue []struct {
			Code       string   `json:"code"`
			Expression []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(a.body, &oo) != nil || len(oo.Issue) == 0 {
		return ""
	}
	return oo.Issue[0].Code + "@" + strings.Join(oo.Issue[0].Expression, ",")
}

func fhirRequest(t *testing.T, method, url, token string, body []byte, header ...string) fhirAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", fhir.ContentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fhirAnswer{status: resp.StatusCode, body: b, header: resp.Header}
}

func fhirPatientJSON(nhsNumber, mrn string) []byte {
	return []byte(`{"resourceType":"Patient","identifier":[
  {"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + nhsNumber + `","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"NH"}]}},
  {"system":"urn:careflow:authority:HOSP","value":"` + mrn + `","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]}}],
 "name":[{"family":"DOE","given":["JANE"]}],"gender":"female","birthDate":"1980-01-01"}`)
}

// Issue 12: a token is checked before a byte of the body is read:
// expired, unsigned, wrongly signed, for another audience or issuer (401),
// for another interface or without the SMART scope of the type (403).
func TestFHIRAuthorisation(t *testing.T) {
	est := newFHIREstate(t, "http://127.0.0.1:1/fhir")
	startEngine(t, est.config(t), "")
	patient := fhirPatientJSON(nhs(1), "F1")
	stranger := testpki.NewIssuer(t, "https://idp.test")
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "https://idp.test", "aud": "careflow", "sub": "x",
		"scope": "careflow/apps.write system/*.write", "exp": time.Now().Add(time.Minute).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", 401, "login@"},
		{"expired", est.issuer.Token(t, "careflow", "app-1", "careflow/apps.write system/Patient.write", -time.Minute, nil), 401, "login@"},
		{"unsigned (alg none)", unsigned, 401, "login@"},
		{"signed by another key", stranger.Token(t, "careflow", "app-1", "careflow/apps.write system/Patient.write", time.Minute, nil), 401, "login@"},
		{"another audience", est.issuer.Token(t, "ehr", "app-1", "careflow/apps.write system/Patient.write", time.Minute, nil), 401, "login@"},
		{"a token for another interface", est.token(t, "other", "system/Patient.write"), 403, "forbidden@"},
		{"no SMART scope for Patient", est.token(t, "apps", "system/Observation.write"), 403, "forbidden@"},
		{"a read scope", est.token(t, "apps", "system/Patient.read"), 403, "forbidden@"},
		{"SMART 1 write scope", est.token(t, "apps", "system/Patient.write"), 201, ""},
		{"SMART 2 create scope", est.token(t, "apps", "system/Patient.c"), 201, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := fhirRequest(t, "POST", est.base("apps")+"/Patient", tc.token, patient)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.code != "" && a.expression() != tc.code {
				t.Errorf("outcome %s, want %s", a.expression(), tc.code)
			}
			if a.status == 401 && !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
			}
		})
	}
	// Reading needs a read scope; a conditional create that matches answers
	// a writer without one with the location only.
	single := fhirPatientJSON(nhs(2), "F2")
	a := fhirRequest(t, "POST", est.base("apps")+"/Patient", est.token(t, "apps", "system/Patient.write"), single)
	id := a.header.Get("Location")
	id = id[strings.Index(id, "/Patient/")+len("/Patient/"):]
	id, _, _ = strings.Cut(id, "/")
	if a := fhirRequest(t, "GET", est.base("apps")+"/Patient/"+id, est.token(t, "apps", "system/Patient.write"), nil); a.status != 403 {
		t.Errorf("a read with a write scope: %d", a.status)
	}
	if a := fhirRequest(t, "GET", est.base("apps")+"/Patient/"+id, est.token(t, "apps", "system/Patient.read"), nil); a.status != 200 || !strings.Contains(string(a.body), nhs(2)) {
		t.Errorf("a read with a read scope: %d %s", a.status, a.body)
	}
	if a := fhirRequest(t, "POST", est.base("apps")+"/Patient", est.token(t, "apps", "system/Patient.write"), single,
		"If-None-Exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|"+nhs(2)); a.status != 200 || len(a.body) != 0 || a.header.Get("Location") == "" {
		t.Errorf("a matched conditional create without a read scope: %d, %d bytes", a.status, len(a.body))
	}
	// The interface other takes only Observations, whatever the token.
	if a := fhirRequest(t, "POST", est.base("other")+"/Patient", est.token(t, "other", "system/*.write"), patient); a.status != 404 {
		t.Errorf("a Patient to an Observation-only interface: %d %s", a.status, a.body)
	}
}

// specDir holds the FHIR specification's own examples (connectors/fhir's
// testdata, whose README says where each came from).
const specDir = "../../connectors/fhir/testdata/spec"

// Issue 12: the specification's valid examples of every resource type
// careflow takes are accepted (2xx) over HTTP by a running engine, and its
// invalid ones are refused with the status and the element the manifest
// gives. Each valid example is written by PUT with its own id (update as
// create), patients first, so that the references between the examples
// hold; a patient an example names that has no example of its own is
// written first as a bare Patient with that id.
func TestFHIRSpecExamplesOverHTTP(t *testing.T) {
	est := newFHIREstate(t, "http://127.0.0.1:1/fhir")
	startEngine(t, est.config(t), "")
	tok := est.token(t, "apps", "system/*.write")
	files, err := filepath.Glob(filepath.Join(specDir, "valid", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s (%v)", specDir, err)
	}
	type example struct {
		file, typ, id string
		body          []byte
	}
	var examples []example
	have := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal(b, &head); err != nil {
			t.Fatal(err)
		}
		if head.ResourceType == "Bundle" {
			continue // the spec's Bundles ask for reads and deletes: TestFHIRSpecBundles
		}
		examples = append(examples, example{filepath.Base(f), head.ResourceType, head.ID, b})
		have[head.ResourceType+"/"+head.ID] = true
	}
	rank := func(typ string) int {
		if r, ok := map[string]int{"Patient": 0, "Encounter": 1, "ServiceRequest": 2, "Observation": 3}[typ]; ok {
			return r
		}
		return 4
	}
	slices.SortStableFunc(examples, func(a, b example) int { return rank(a.typ) - rank(b.typ) })
	for _, ex := range examples {
		for _, ref := range fhir.References(ex.body) {
			if strings.HasPrefix(ref.Reference, "Patient/") && !have[ref.Reference] {
				id := strings.TrimPrefix(ref.Reference, "Patient/")
				if a := fhirRequest(t, "PUT", est.base("apps")+"/Patient/"+id, tok, []byte(`{"resourceType":"Patient","id":"`+id+`"}`)); a.status != 201 {
					t.Fatalf("bare Patient/%s: %d %s", id, a.status, a.body)
				}
				have[ref.Reference] = true
			}
		}
	}
	for _, ex := range examples {
		t.Run("valid/"+ex.file, func(t *testing.T) {
			a := fhirRequest(t, "PUT", est.base("apps")+"/"+ex.typ+"/"+ex.id, tok, ex.body)
			if a.status != 201 && a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			if loc := a.header.Get("Location"); !strings.Contains(loc, "/fhir/apps/"+ex.typ+"/"+ex.id+"/_history/") {
				t.Errorf("Location %q", loc)
			}
		})
	}

	manifest, err := os.ReadFile(filepath.Join(specDir, "invalid", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File, Code, Expression string
		Status                 int
	}
	if err := json.Unmarshal(manifest, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run("invalid/"+c.File+"/"+c.Expression, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(specDir, "invalid", c.File))
			if err != nil {
				t.Fatal(err)
			}
			typ := "Patient" // a body that is not JSON names no type
			var head struct{ ResourceType string }
			if json.Unmarshal(b, &head) == nil && head.ResourceType != "" {
				typ = head.ResourceType
			}
			a := fhirRequest(t, "POST", est.base("apps")+"/"+typ, tok, b)
			if a.status != c.Status {
				t.Fatalf("status %d, want %d: %s", a.status, c.Status, a.body)
			}
			if !strings.Contains(string(a.body), `"`+c.Code+`"`) || (c.Expression != "" && !strings.Contains(string(a.body), `"`+c.Expression+`"`)) {
				t.Errorf("the OperationOutcome does not name %s at %q: %s", c.Code, c.Expression, a.body)
			}
		})
	}
}

// The specification's Bundle examples are valid FHIR, but not all writes:
// its transaction deletes, searches and calls an operation, its batch only
// reads, its lipid panel is a collection. careflow, an interface layer,
// refuses each whole, at the entry or element it does not take, and
// stores nothing of it.
func TestFHIRSpecBundles(t *testing.T) {
	est := newFHIREstate(t, "http://127.0.0.1:1/fhir")
	startEngine(t, est.config(t), "")
	tok := est.token(t, "apps", "system/*.write")
	for _, tc := range []struct {
		file, code, at string
		status         int
	}{
		{"Bundle-bundle-transaction.json", "not-supported", "Bundle.entry[", 404},
		{"Bundle-bundle-request-medsallergies.json", "not-supported", "Bundle.entry[0].request.method", 404},
		{"Bundle-lipids.json", "value", "Bundle.type", 400},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(specDir, "valid", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			a := fhirRequest(t, "POST", est.base("apps"), tok, b)
			if a.status != tc.status || !strings.HasPrefix(a.expression(), tc.code+"@"+tc.at) {
				t.Errorf("status %d, outcome %s; want %d, %s at %s…", a.status, a.expression(), tc.status, tc.code, tc.at)
			}
		})
	}
	// Nothing of them was stored: the spec's own Patient/123 is unknown.
	if a := fhirRequest(t, "GET", est.base("apps")+"/Patient/123", est.token(t, "apps", "system/*.read"), nil); a.status != 404 {
		t.Errorf("Patient/123 after the refused transaction: %d", a.status)
	}
}

// Issue 12, with an independent client (npm's fhir-kit-client): it
// creates a Patient and an Observation on careflow's FHIR base, reads the
// Patient back, posts a transaction, and is refused without a token and
// with a token for another interface.
func TestFHIRKitClient(t *testing.T) {
	est := newFHIREstate(t, "http://127.0.0.1:1/fhir")
	startEngine(t, est.config(t), "")
	tok := est.token(t, "apps", "system/Patient.write", "system/Patient.read", "system/Observation.write")
	dir := t.TempDir()
	file := func(name string, body []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	n := nhs(50)
	out, status, err := peer.FHIRClient(t, est.base("apps"), tok, "create", "Patient", file("patient.json", fhirPatientJSON(n, "M50")))
	if err != nil || status != 201 {
		t.Fatalf("create Patient: %d %v %s", status, err, out)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(out, &created); err != nil || created.ID == "" {
		t.Fatalf("created %s", out)
	}
	obs := []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
 "subject":{"reference":"Patient/` + created.ID + `"},"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`)
	if out, status, err = peer.FHIRClient(t, est.base("apps"), tok, "create", "Observation", file("obs.json", obs)); err != nil || status != 201 {
		t.Fatalf("create Observation: %d %v %s", status, err, out)
	}
	if out, status, err = peer.FHIRClient(t, est.base("apps"), tok, "read", "Patient", created.ID); err != nil || status != 200 || !strings.Contains(string(out), n) {
		t.Fatalf("read Patient: %d %v %s", status, err, out)
	}
	tx := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000051",
 "resource":` + string(fhirPatientJSON(n, "M50")) + `,"request":{"method":"PUT","url":"Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|` + n + `"}}]}`)
	if out, status, err = peer.FHIRClient(t, est.base("apps"), tok, "transaction", file("tx.json", tx)); err != nil || status != 200 || !strings.Contains(string(out), "Patient/"+created.ID+"/_history/2") {
		t.Fatalf("transaction: %d %v %s", status, err, out)
	}
	if _, status, _ = peer.FHIRClient(t, est.base("apps"), "-", "create", "Patient", file("p2.json", fhirPatientJSON(n, "M50"))); status != 401 {
		t.Errorf("no token: %d, want 401", status)
	}
	if _, status, _ = peer.FHIRClient(t, est.base("apps"), est.token(t, "other", "system/*.write"), "create", "Patient", file("p3.json", fhirPatientJSON(n, "M50"))); status != 403 {
		t.Errorf("a token for another interface: %d, want 403", status)
	}
}
