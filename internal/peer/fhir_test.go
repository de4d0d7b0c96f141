package peer

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/careflow-health/careflow/internal/freeport"
)

// The identifiers in testdata/fhir/transaction.json.
const (
	txPatientSystem, txPatientValue         = "urn:careflow:authority:HOSP", "TEST-0001"
	txObservationSystem, txObservationValue = "urn:careflow:authority:LAB", "TEST-OBX-0001"
)

// parseFHIR reads a FHIR R4 JSON resource with google/fhir's validating
// unmarshaller: what the peers send back must be FHIR careflow can read.
func parseFHIR(t *testing.T, what string, body []byte) *bcrpb.ContainedResource {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	m, err := u.Unmarshal(body)
	if err != nil {
		t.Fatalf("%s is not FHIR R4 google/fhir reads: %v\n%s", what, err, body)
	}
	return m.(*bcrpb.ContainedResource)
}

// fhirDo sends one request to a FHIR server and returns status and body.
func fhirDo(t *testing.T, method, u string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the body: %v", method, u, err)
	}
	return resp.StatusCode, b
}

// searchOne searches base for resources of typ with identifier system|value
// and fails t unless there is exactly one.
func searchOne(t *testing.T, base, typ, system, value string) *bcrpb.ContainedResource {
	t.Helper()
	u := base + "/" + typ + "?identifier=" + url.QueryEscape(system+"|"+value)
	status, body := fhirDo(t, http.MethodGet, u, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", u, status, body)
	}
	entries := parseFHIR(t, "the searchset", body).GetBundle().GetEntry()
	if len(entries) != 1 {
		t.Fatalf("GET %s: %d %s resources with the identifier, want exactly 1:\n%s", u, len(entries), typ, body)
	}
	return entries[0].GetResource()
}

// A transaction of two conditional PUTs, delivered twice (as careflow
// redelivers after a crash), leaves one Patient and one Observation, the
// Observation's urn:uuid subject rewritten to that Patient: careflow's
// idempotent delivery rests on exactly this.
func TestFHIRServerConditionalTransactionIsIdempotent(t *testing.T) {
	base := FHIRServer(t)
	tx, err := os.ReadFile(filepath.Join("testdata", "fhir", "transaction.json"))
	if err != nil {
		t.Fatal(err)
	}
	parseFHIR(t, "testdata/fhir/transaction.json", tx)

	var patientIDs []string
	for i, wantEntry := range []string{"201", "200"} { // created, then updated in place
		status, body := fhirDo(t, http.MethodPost, base, tx)
		if status != http.StatusOK {
			t.Fatalf("delivery %d: POST the transaction: status %d, want 200: %s", i+1, status, body)
		}
		resp := parseFHIR(t, fmt.Sprintf("delivery %d's transaction-response", i+1), body).GetBundle()
		if len(resp.GetEntry()) != 2 {
			t.Fatalf("delivery %d: %d response entries, want 2: %s", i+1, len(resp.GetEntry()), body)
		}
		for j, e := range resp.GetEntry() {
			if got := e.GetResponse().GetStatus().GetValue(); got != wantEntry {
				t.Errorf("delivery %d, entry %d: status %q, want %q", i+1, j, got, wantEntry)
			}
		}
		patientIDs = append(patientIDs, resp.GetEntry()[0].GetResource().GetPatient().GetId().GetValue())
	}
	if patientIDs[0] == "" || patientIDs[0] != patientIDs[1] {
		t.Errorf("the two deliveries answered with Patients %q and %q, want one and the same", patientIDs[0], patientIDs[1])
	}

	patient := searchOne(t, base, "Patient", txPatientSystem, txPatientValue).GetPatient()
	id := patient.GetId().GetValue()
	if id != patientIDs[0] {
		t.Errorf("the search finds Patient %q, the transaction answered %q", id, patientIDs[0])
	}
	obs := searchOne(t, base, "Observation", txObservationSystem, txObservationValue).GetObservation()
	if got, want := obs.GetSubject().GetPatientId().GetValue(), id; got != want {
		t.Errorf("Observation.subject is Patient %q (reference %v), want %q", got, obs.GetSubject(), want)
	}

	status, body := fhirDo(t, http.MethodGet, base+"/Patient/"+id, nil)
	if status != http.StatusOK {
		t.Fatalf("GET Patient/%s: status %d: %s", id, status, body)
	}
	read := parseFHIR(t, "the Patient read", body).GetPatient()
	if got := read.GetIdentifier(); len(got) != 1 || got[0].GetValue().GetValue() != txPatientValue {
		t.Errorf("GET Patient/%s: identifiers %v, want the one the transaction put", id, got)
	}
}

// A transaction is answered as a whole: an entry the server cannot carry
// out fails the Bundle with that entry's status (a batch would answer 200
// with the failure inside), so careflow sees the rejection.
func TestFHIRServerTransactionFailsWhole(t *testing.T) {
	base := FHIRServer(t)
	tx := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
	  {"resource":{"resourceType":"Patient","gender":"unknown"},"request":{"method":"POST","url":"Patient"}},
	  {"request":{"method":"GET","url":"Patient/no-such-patient"}}]}`)
	parseFHIR(t, "the transaction", tx)
	status, body := fhirDo(t, http.MethodPost, base, tx)
	if status != http.StatusNotFound {
		t.Fatalf("POST a transaction with a read of a missing Patient: status %d, want 404: %s", status, body)
	}
	if parseFHIR(t, "the failed transaction's body", body).GetOperationOutcome() == nil {
		t.Errorf("a failed transaction without an OperationOutcome: %s", body)
	}
}

func TestFHIRServerMetadata(t *testing.T) {
	base := FHIRServer(t)
	status, body := fhirDo(t, http.MethodGet, base+"/metadata", nil)
	if status != http.StatusOK {
		t.Fatalf("GET metadata: status %d: %s", status, body)
	}
	cs := parseFHIR(t, "the CapabilityStatement", body).GetCapabilityStatement()
	if cs == nil {
		t.Fatalf("GET metadata is not a CapabilityStatement: %s", body)
	}
	if got := cs.GetFhirVersion().GetValue().String(); got != "V_4_0_1" {
		t.Errorf("fhirVersion %s, want 4.0.1", got)
	}
}

// Two servers from one test are two servers: each call's data is its own.
func TestFHIRServersAreSeparate(t *testing.T) {
	a, b := FHIRServer(t), FHIRServer(t)
	if a == b {
		t.Fatalf("both servers at %s", a)
	}
	tx, err := os.ReadFile(filepath.Join("testdata", "fhir", "transaction.json"))
	if err != nil {
		t.Fatal(err)
	}
	if status, body := fhirDo(t, http.MethodPost, a, tx); status != http.StatusOK {
		t.Fatalf("POST the transaction to %s: status %d: %s", a, status, body)
	}
	u := b + "/Patient?identifier=" + url.QueryEscape(txPatientSystem+"|"+txPatientValue)
	_, body := fhirDo(t, http.MethodGet, u, nil)
	if n := len(parseFHIR(t, "the searchset", body).GetBundle().GetEntry()); n != 0 {
		t.Errorf("%s has %d Patients that were sent to %s", b, n, a)
	}
}

// fhir-kit-client, through client.mjs, creates, reads and searches on the
// medplum server, and a 404 is a status, not an error.
func TestFHIRClientOnTheServer(t *testing.T) {
	base := FHIRServer(t)
	file := filepath.Join("testdata", "fhir", "patient.json")

	out, status, err := FHIRClient(t, base, "-", "create", "Patient", file)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create Patient: status %d, %v: %s", status, err, out)
	}
	id := parseFHIR(t, "the created Patient", out).GetPatient().GetId().GetValue()
	if id == "" {
		t.Fatalf("the created Patient has no id: %s", out)
	}

	out, status, err = FHIRClient(t, base, "-", "read", "Patient", id)
	if err != nil || status != http.StatusOK {
		t.Fatalf("read Patient/%s: status %d, %v: %s", id, status, err, out)
	}
	p := parseFHIR(t, "the Patient read", out).GetPatient()
	if got := p.GetIdentifier(); p.GetId().GetValue() != id || len(got) != 1 || got[0].GetValue().GetValue() != "TEST-0002" {
		t.Errorf("read Patient/%s: %s, want the Patient of %s", id, out, file)
	}

	out, status, err = FHIRClient(t, base, "-", "search", "Patient", "identifier="+url.QueryEscape("urn:careflow:authority:HOSP|TEST-0002"))
	if err != nil || status != http.StatusOK {
		t.Fatalf("search Patient: status %d, %v: %s", status, err, out)
	}
	if n := len(parseFHIR(t, "the searchset", out).GetBundle().GetEntry()); n != 1 {
		t.Errorf("search Patient by identifier: %d entries, want 1: %s", n, out)
	}

	out, status, err = FHIRClient(t, base, "-", "read", "Patient", "no-such-patient")
	if err != nil || status != http.StatusNotFound {
		t.Fatalf("read a missing Patient: status %d, %v, want 404 and no error", status, err)
	}
	if parseFHIR(t, "the 404's body", out).GetOperationOutcome() == nil {
		t.Errorf("a 404 without an OperationOutcome: %s", out)
	}
}

// client.mjs sends the bearer token it is given, and none for "-"; the
// server here is Go's, to see the request fhir-kit-client makes.
func TestFHIRClientBearerToken(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}`)
	}))
	defer srv.Close()

	for _, token := range []string{"tok-123", "-"} {
		out, status, err := FHIRClient(t, srv.URL, token, "read", "Patient", "x")
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("token %q: status %d, %v, want 401 and no error: %s", token, status, err, out)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auth) != 2 || auth[0] != "Bearer tok-123" || auth[1] != "" {
		t.Errorf("Authorization headers %q, want [\"Bearer tok-123\" \"\"]", auth)
	}
}

// No HTTP answer at all is an error with no status.
func TestFHIRClientNoServer(t *testing.T) {
	closed := "http://" + freeport.For(t)
	out, status, err := FHIRClient(t, closed, "-", "read", "Patient", "x")
	if err == nil || status != 0 {
		t.Fatalf("read from %s where nothing listens: status %d, error %v, want status 0 and an error: %s", closed, status, err, out)
	}
	_, status, err = FHIRClient(t, closed, "-", "frobnicate")
	if err == nil || status != 0 {
		t.Fatalf("an unknown operation: status %d, error %v, want status 0 and an error", status, err)
	}
}

func TestNodeSupported(t *testing.T) {
	tests := []struct {
		version string
		want    bool
	}{
		{"v20.20.2", true},
		{"v20.19.0", true},
		{"v20.18.3", false},
		{"v18.20.4", false}, // Debian 12's nodejs
		{"v21.7.0", false},
		{"v22.11.0", false},
		{"v22.12.0", true},
		{"v24.2.0", true},
		{"v100.0.0", true},
		{"20", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := nodeSupported(tc.version); got != tc.want {
			t.Errorf("nodeSupported(%q) = %v, want %v", tc.version, got, tc.want)
		}
	}
}

func TestClientStatus(t *testing.T) {
	tests := []struct {
		stderr string
		want   int
		ok     bool
	}{
		{"status 201\n", 201, true},
		{"(node:1) ExperimentalWarning: x\nstatus 404\n", 404, true},
		{"read: connect ECONNREFUSED 127.0.0.1:1\n", 0, false},
		{"status 42\n", 0, false},
		{"status abc\n", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, ok := clientStatus(tc.stderr)
		if got != tc.want || ok != tc.ok {
			t.Errorf("clientStatus(%q) = %d, %v, want %d, %v", tc.stderr, got, ok, tc.want, tc.ok)
		}
	}
}

// The ready line may come in pieces, after other lines; another port's
// line, or the line without its end, is not it.
func TestLineWatch(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   bool
	}{
		{"one write", []string{"listening 8080\n"}, true},
		{"in pieces after a warning", []string{"warn\nlisten", "ing 80", "80\n"}, true},
		{"another port", []string{"listening 80801\n"}, false},
		{"no newline yet", []string{"listening 8080"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &lineWatch{want: "listening 8080", seen: make(chan struct{})}
			for _, s := range tc.writes {
				w.Write([]byte(s))
			}
			w.Write([]byte("more\n")) // after the line: no second close
			select {
			case <-w.seen:
				if !tc.want {
					t.Error("seen, want not")
				}
			default:
				if tc.want {
					t.Error("not seen, want seen")
				}
			}
		})
	}
}
