package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

const fhirPatient = `{"resourceType":"Patient",
 "identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"},{"system":"urn:careflow:authority:HOSP","value":"T100"}],
 "name":[{"family":"Smith","given":["Jo"]}],"gender":"female","birthDate":"1970-01-02"}`

func fhirObservation(subject string) string {
	return `{"resourceType":"Observation","status":"final",
 "identifier":[{"system":"urn:careflow:authority:LIS","value":"F1-1"}],
 "code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},
 "subject":{"reference":"` + subject + `"},"valueQuantity":{"value":5.1,"unit":"mmol/L"}}`
}

// fhirHarness is the ingest harness with a FHIR interface "apps".
func fhirHarness(t *testing.T) (*harness, *httptest.Server) {
	h := newHarness(t, func(c *Config) {
		c.Interfaces = append(c.Interfaces, Interface{Name: "apps", FHIR: true})
		c.Kafka = []kgo.Opt{kgo.SeedBrokers(c.Client.OptValue(kgo.SeedBrokers).([]string)...)}
		c.FreshTransactionalID = true
		c.Interfaces[0].Identity = identity.Policy{Trust: []identity.Trusted{{Authority: "NHS", Check: "nhs"}}}
		c.Interfaces[len(c.Interfaces)-1].Identity = c.Interfaces[0].Identity
	})
	srv := httptest.NewServer(h.stage.HTTPHandler())
	t.Cleanup(srv.Close)
	return h, srv
}

type fhirReply struct {
	status  int
	header  http.Header
	body    []byte
	outcome []string // each issue as code@expression
}

func fhirDo(t *testing.T, method, url, body string, header ...string) fhirReply {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", fhir.ContentType)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := fhirReply{status: resp.StatusCode, header: resp.Header, body: b}
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code       string   `json:"code"`
			Expression []string `json:"expression"`
		} `json:"issue"`
	}
	if json.Unmarshal(b, &oo) == nil && oo.ResourceType == "OperationOutcome" {
		for _, is := range oo.Issue {
			r.outcome = append(r.outcome, is.Code+"@"+strings.Join(is.Expression, ","))
		}
	}
	return r
}

func idOf(t *testing.T, b []byte) string {
	t.Helper()
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
		t.Fatalf("no id in %s", b)
	}
	return r.ID
}

func rawOf(t *testing.T, h *harness, rec *kgo.Record) avro.RawMessage {
	t.Helper()
	var raw avro.RawMessage
	if err := h.serde.Decode(rec.Value, &raw); err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestFHIRWrites walks one client's session: create, update with
// If-Match, conditional create and update, an Observation that names its
// patient by id, and a transaction; each answer's status and headers, and
// what reached Kafka.
func TestFHIRWrites(t *testing.T) {
	h, srv := fhirHarness(t)
	base := srv.URL + "/fhir/apps"

	r := fhirDo(t, "POST", base+"/Patient", fhirPatient)
	if r.status != 201 || r.header.Get("ETag") != `W/"1"` || !strings.Contains(r.header.Get("Location"), "/fhir/apps/Patient/") {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	pid := idOf(t, r.body)
	updated := strings.Replace(fhirPatient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+pid+`",`, 1)
	if r = fhirDo(t, "PUT", base+"/Patient/"+pid, updated, "If-Match", `W/"1"`); r.status != 200 || r.header.Get("ETag") != `W/"2"` {
		t.Fatalf("update: %d %v %s", r.status, r.header, r.body)
	}
	if r = fhirDo(t, "PUT", base+"/Patient/"+pid, updated, "If-Match", `W/"1"`); r.status != 412 || r.outcome[0] != "conflict@" {
		t.Fatalf("stale If-Match: %d %v", r.status, r.outcome)
	}
	if r = fhirDo(t, "POST", base+"/Patient", fhirPatient, "If-None-Exist", "identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"); r.status != 200 || idOf(t, r.body) != pid {
		t.Fatalf("conditional create of a known patient: %d %s", r.status, r.body)
	}
	if r = fhirDo(t, "PUT", base+"/Patient?identifier=urn:careflow:authority:HOSP|T100", fhirPatient); r.status != 200 || r.header.Get("ETag") != `W/"3"` || idOf(t, r.body) != pid {
		t.Fatalf("conditional update: %d %v %s", r.status, r.header, r.body)
	}
	if r = fhirDo(t, "POST", base+"/Observation", fhirObservation("Patient/"+pid)); r.status != 201 {
		t.Fatalf("observation: %d %s", r.status, r.body)
	}
	// A patient named by identifier alone (a logical reference) keys the
	// write too.
	byIdent := strings.Replace(fhirObservation("x"), `"subject":{"reference":"x"}`, `"subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}}`, 1)
	if r = fhirDo(t, "POST", base+"/Observation", byIdent); r.status != 201 {
		t.Fatalf("observation by patient identifier: %d %s", r.status, r.body)
	}
	if r = fhirDo(t, "GET", base+"/Patient/"+pid, ""); r.status != 200 || r.header.Get("ETag") != `W/"3"` {
		t.Fatalf("read: %d %v", r.status, r.header)
	}

	// Create, update, conditional update, two observations: five writes; the
	// stale update and the matched conditional create stored nothing.
	recs := h.consume(t, topics.Raw, 5)
	want := []struct{ typ, trigger string }{{"Patient", "create"}, {"Patient", "update"}, {"Patient", "update"}, {"Observation", "create"}, {"Observation", "create"}}
	for i, rec := range recs {
		raw := rawOf(t, h, rec)
		if raw.Transport != avro.TransportFHIR || raw.MessageType != want[i].typ || raw.TriggerEvent != want[i].trigger {
			t.Errorf("raw %d: %s %s %s", i, raw.Transport, raw.MessageType, raw.TriggerEvent)
		}
		// The Observation goes under its patient's key, taken from the
		// patient it names.
		if raw.PatientKey != "9434765919^NHS" || string(rec.Key) != raw.PatientKey {
			t.Errorf("raw %d: patient key %q, record key %q", i, raw.PatientKey, rec.Key)
		}
	}
	obs := rawOf(t, h, recs[3])
	if !bytes.Contains(obs.Related, []byte(`"id":"`+pid+`"`)) {
		t.Errorf("the observation's raw record does not carry its patient: %s", obs.Related)
	}
	if string(obs.Payload) != fhirObservation("Patient/"+pid) {
		t.Error("the payload is not the body as sent")
	}
	h.consume(t, topics.FHIR, 5) // three Patient versions (compacted later) and the Observations
}

func TestFHIRTransaction(t *testing.T) {
	h, srv := fhirHarness(t)
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:9d3c0a5e-0000-4000-8000-000000000001","resource":` + fhirPatient + `,
  "request":{"method":"PUT","url":"Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"}},
 {"fullUrl":"urn:uuid:9d3c0a5e-0000-4000-8000-000000000002","resource":` + fhirObservation("urn:uuid:9d3c0a5e-0000-4000-8000-000000000001") + `,
  "request":{"method":"POST","url":"Observation"}}]}`
	r := fhirDo(t, "POST", srv.URL+"/fhir/apps", bundle)
	if r.status != 200 {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	var resp struct {
		Type  string `json:"type"`
		Entry []struct {
			Response struct{ Status, Location string } `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil || resp.Type != "transaction-response" || len(resp.Entry) != 2 {
		t.Fatalf("response %s", r.body)
	}
	patientLoc := resp.Entry[0].Response.Location
	if resp.Entry[0].Response.Status != "201 Created" || !strings.HasPrefix(patientLoc, "Patient/") {
		t.Errorf("patient entry %+v", resp.Entry[0].Response)
	}
	recs := h.consume(t, topics.Raw, 1)
	raw := rawOf(t, h, recs[0])
	if raw.MessageType != "Bundle" || raw.PatientKey != "9434765919^NHS" || string(raw.Payload) != bundle {
		t.Errorf("raw %s %q", raw.MessageType, raw.PatientKey)
	}
	// The Observation is stored pointing at the Patient's new id.
	patientID := strings.Split(patientLoc, "/")[1]
	if !bytes.Contains(raw.Related, []byte(`"reference":"Patient/`+patientID+`"`)) {
		t.Errorf("related does not hold the observation with its rewritten subject: %s", raw.Related)
	}
	// The same transaction again updates the patient (one person, two
	// versions) and adds a second observation.
	if r = fhirDo(t, "POST", srv.URL+"/fhir/apps/", bundle); r.status != 200 || !bytes.Contains(r.body, []byte(`"location":"`+strings.Replace(patientLoc, "/_history/1", "/_history/2", 1))) {
		t.Errorf("second transaction: %d %s", r.status, r.body)
	}
}

// TestFHIRRefusals checks each bad request gets its status and an
// OperationOutcome naming the element, and that nothing is stored.
func TestFHIRRefusals(t *testing.T) {
	h, srv := fhirHarness(t)
	base := srv.URL + "/fhir/apps"
	broken := `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:9d3c0a5e-0000-4000-8000-000000000002","resource":` + fhirObservation("urn:uuid:9d3c0a5e-0000-4000-8000-0000000000ff") + `,
  "request":{"method":"POST","url":"Observation"}}]}`
	huge := `{"resourceType":"Patient","name":[{"text":"` + strings.Repeat("x", 10<<20) + `"}]}`
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		outcome                  string // code@expression of the first issue
	}{
		{"unparseable JSON", "POST", "/Patient", `{"resourceType":"Patient",`, nil, 400, "structure@"},
		{"unsupported type", "POST", "/Medication", `{"resourceType":"Medication"}`, nil, 404, "not-supported@"},
		{"body of another type than the URL", "POST", "/Observation", fhirPatient, nil, 400, "invalid@Patient"},
		{"invalid birth date", "POST", "/Patient", `{"resourceType":"Patient","birthDate":"1970-13-45"}`, nil, 400, "value@Patient.birthDate"},
		{"observation without code", "POST", "/Observation", `{"resourceType":"Observation","status":"final"}`, nil, 400, "required@Observation.code"},
		{"reference to a patient the interface does not hold", "POST", "/Observation", fhirObservation("Patient/nope"), nil, 422, "processing@Observation.subject"},
		{"observation that names no patient", "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, nil, 422, "processing@Observation"},
		{"broken internal reference", "POST", "", broken, nil, 400, "not-found@Bundle.entry[0].resource.subject"},
		{"update whose body names another id", "PUT", "/Patient/a1", `{"resourceType":"Patient","id":"b2"}`, nil, 400, "invalid@Patient.id"},
		{"If-Match on a resource never written", "PUT", "/Patient/a1", `{"resourceType":"Patient","id":"a1"}`, []string{"If-Match", `W/"4"`}, 412, "conflict@"},
		{"10 MB resource", "POST", "/Patient", huge, nil, 413, "too-costly@"},
		{"unknown interface", "POST", "/../nope/Patient", fhirPatient, nil, 404, "not-found@"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := base + tc.path
			if tc.name == "unknown interface" {
				url = srv.URL + "/fhir/nope/Patient"
			}
			r := fhirDo(t, tc.method, url, tc.body, tc.header...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if len(r.outcome) == 0 || r.outcome[0] != tc.outcome {
				t.Errorf("outcome %v, want %s first", r.outcome, tc.outcome)
			}
		})
	}
	h.consume(t, topics.Raw, 0)
	h.consume(t, topics.FHIR, 0)
}

func TestFHIRCapabilityAndRestart(t *testing.T) {
	h, srv := fhirHarness(t)
	r := fhirDo(t, "GET", srv.URL+"/fhir/apps/metadata", "")
	if r.status != 200 {
		t.Fatalf("metadata: %d", r.status)
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Unmarshal(r.body); err != nil {
		t.Errorf("the CapabilityStatement is not valid R4: %v\n%s", err, r.body)
	}
	for _, typ := range fhir.ResourceTypes {
		if !bytes.Contains(r.body, []byte(`"type":"`+typ+`"`)) {
			t.Errorf("metadata does not list %s", typ)
		}
	}
	r = fhirDo(t, "POST", srv.URL+"/fhir/apps/Patient", fhirPatient)
	pid := idOf(t, r.body)
	h.consume(t, topics.FHIR, 1)

	// A new ingest (a restart) loads careflow.fhir: the version goes on.
	st, err := New(Config{Interfaces: []Interface{{Name: "apps", FHIR: true}}, Client: h.client, Serde: h.serde,
		Kafka: []kgo.Opt{kgo.SeedBrokers(h.cluster.ListenAddrs()...)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.LoadFHIR(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(st.HTTPHandler())
	defer srv2.Close()
	body := strings.Replace(fhirPatient, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+pid+`",`, 1)
	if r = fhirDo(t, "PUT", srv2.URL+"/fhir/apps/Patient/"+pid, body, "If-Match", `W/"1"`); r.status != 200 || r.header.Get("ETag") != `W/"2"` {
		t.Errorf("update after restart: %d %v %s", r.status, r.header, r.body)
	}
}
