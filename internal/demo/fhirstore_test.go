package demo

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/careflow-health/careflow/connectors/fhir"
)

// validR4 reads b with google/fhir's validating R4 unmarshaller and
// returns it as a generic document.
func validR4(t *testing.T, what string, b []byte) map[string]any {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Unmarshal(b); err != nil {
		t.Fatalf("%s is not valid FHIR R4: %v\n%s", what, err, b)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/fhir/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func do(t *testing.T, method, u, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// responses are the status and location of each entry of a
// transaction-response Bundle.
func responses(t *testing.T, b []byte) []string {
	t.Helper()
	doc := validR4(t, "the transaction response", b)
	if doc["type"] != "transaction-response" {
		t.Fatalf("response Bundle type %v", doc["type"])
	}
	var out []string
	for _, e := range doc["entry"].([]any) {
		r := e.(map[string]any)["response"].(map[string]any)
		out = append(out, r["status"].(string)+" "+r["location"].(string)+" "+r["etag"].(string))
	}
	return out
}

// The store takes the same transaction twice and keeps one Patient (the
// conditional update matched it), with a new Observation each time whose
// subject is the Patient's id, no longer the Bundle's urn:uuid.
func TestFHIRStoreConditionalUpdate(t *testing.T) {
	st := &stats{}
	srv := httptest.NewServer(newFHIRStore(st).handler())
	defer srv.Close()
	tx := fixture(t, "transaction.json")
	// The same Patient as a conditional create (If-None-Exist), as
	// careflow writes the resources it must not overwrite: it matches, so
	// nothing is written.
	var doc map[string]any
	json.Unmarshal(tx, &doc)
	doc["entry"].([]any)[0].(map[string]any)["request"] = map[string]any{
		"method": "POST", "url": "Patient", "ifNoneExist": "identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990000018"}
	create, _ := json.Marshal(doc)

	for _, tc := range []struct {
		path string
		body []byte
		want []string
	}{
		{"/fhir", tx, []string{`201 Created Patient/1/_history/1 W/"1"`, `201 Created Observation/2/_history/1 W/"1"`}},
		{"/", tx, []string{`200 OK Patient/1/_history/2 W/"2"`, `201 Created Observation/3/_history/1 W/"1"`}},
		{"/fhir/", create, []string{`200 OK Patient/1/_history/2 W/"2"`, `201 Created Observation/4/_history/1 W/"1"`}},
	} {
		code, body := do(t, "POST", srv.URL+tc.path, "application/fhir+json", tc.body)
		if code != http.StatusOK {
			t.Fatalf("POST %s = %d\n%s", tc.path, code, body)
		}
		if got := responses(t, body); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("POST %s answered\n%s\nwant\n%s", tc.path, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}

	code, body := do(t, "GET", srv.URL+"/fhir/Patient?identifier="+url.QueryEscape("https://fhir.nhs.uk/Id/nhs-number|9990000018"), "", nil)
	if code != 200 {
		t.Fatalf("search = %d %s", code, body)
	}
	var set struct {
		Total int `json:"total"`
		Entry []struct {
			Resource struct {
				ID   string `json:"id"`
				Meta struct {
					VersionID string `json:"versionId"`
				} `json:"meta"`
			} `json:"resource"`
		} `json:"entry"`
	}
	validR4(t, "the searchset", body)
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if set.Total != 1 || len(set.Entry) != 1 || set.Entry[0].Resource.ID != "1" || set.Entry[0].Resource.Meta.VersionID != "2" {
		t.Errorf("search by NHS number found %+v, want Patient 1 at version 2 only", set)
	}

	for _, id := range []string{"2", "3", "4"} {
		code, body := do(t, "GET", srv.URL+"/Observation/"+id, "", nil)
		if code != 200 {
			t.Fatalf("GET Observation/%s = %d", id, code)
		}
		obs := validR4(t, "the stored Observation", body)
		if ref := obs["subject"].(map[string]any)["reference"]; ref != "Patient/1" {
			t.Errorf("Observation/%s subject %v, want Patient/1", id, ref)
		}
	}
	if code, _ := do(t, "GET", srv.URL+"/Observation/99", "", nil); code != 404 {
		t.Errorf("GET an absent id = %d, want 404", code)
	}

	if st.storeBundles.Load() != 3 || st.storeTypes["Patient"] != 1 || st.storeTypes["Observation"] != 3 {
		t.Errorf("counted %d bundles, holds %v; want 3 bundles, 1 Patient, 3 Observations", st.storeBundles.Load(), st.storeTypes)
	}
}

// A conditional URL's token is split at its raw '|' before it is
// unescaped, as careflow writes it (each part percent-encoded), or, with
// no raw '|', at an encoded one, as curl writes it.
func TestParseToken(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want fhir.Identifier
	}{
		{"https://fhir.nhs.uk/Id/nhs-number|9990000018", fhir.Identifier{System: "https://fhir.nhs.uk/Id/nhs-number", Value: "9990000018"}},
		{"urn:careflow:authority:HOSP|A%7CB%2B1", fhir.Identifier{System: "urn:careflow:authority:HOSP", Value: "A|B+1"}},
		{"urn:x%7Cy|v", fhir.Identifier{System: "urn:x|y", Value: "v"}},
		{"https://fhir.nhs.uk/Id/nhs-number%7C9990000018", fhir.Identifier{System: "https://fhir.nhs.uk/Id/nhs-number", Value: "9990000018"}},
		{"9990000018", fhir.ParseToken("9990000018")}, // a value alone: any system
	} {
		if got := parseToken(tc.raw); got != tc.want {
			t.Errorf("parseToken(%q) = %+v, want %+v", tc.raw, got, tc.want)
		}
	}
}

// What the store refuses: an OperationOutcome naming why, valid FHIR,
// and nothing of the Bundle kept.
func TestFHIRStoreRefusals(t *testing.T) {
	st := &stats{}
	store := newFHIRStore(st)
	srv := httptest.NewServer(store.handler())
	defer srv.Close()

	// Two Patients with the same NHS number, by id: a conditional update
	// on it can no longer pick one.
	twins := func(id string) []byte {
		var b map[string]any
		json.Unmarshal(fixture(t, "transaction.json"), &b)
		e := b["entry"].([]any)[0].(map[string]any)
		e["request"] = map[string]any{"method": "PUT", "url": "Patient/" + id}
		b["entry"] = []any{e}
		out, _ := json.Marshal(b)
		return out
	}
	// A transaction whose second entry fails: its first is not kept either.
	var stale map[string]any
	json.Unmarshal(fixture(t, "transaction.json"), &stale)
	stale["entry"].([]any)[1].(map[string]any)["request"] = map[string]any{"method": "PUT", "url": "Observation/x", "ifMatch": `W/"3"`}
	staleBody, _ := json.Marshal(stale)
	batch := bytes.Replace(fixture(t, "transaction.json"), []byte(`"transaction"`), []byte(`"batch"`), 1)

	for _, tc := range []struct {
		name, contentType string
		body              []byte
		status            int
		code, expression  string
	}{
		{"invalid birthDate", "application/fhir+json", fixture(t, "invalid.json"), 400, "value", "Bundle.entry[0].resource.birthDate"},
		{"not JSON", "application/fhir+json", []byte(`{"resourceType":`), 400, "structure", ""},
		{"a batch", "application/fhir+json", batch, 400, "not-supported", "Bundle.type"},
		{"not FHIR JSON", "text/plain", fixture(t, "transaction.json"), 415, "not-supported", ""},
		{"stale ifMatch on the second entry", "application/fhir+json", staleBody, 412, "conflict", "Bundle.entry[1].request.ifMatch"},
		{"twin a", "application/fhir+json", twins("a"), 200, "", ""},
		{"twin b", "application/fhir+json", twins("b"), 200, "", ""},
		{"conditional update matching two", "application/fhir+json", fixture(t, "transaction.json"), 412, "multiple-matches", "Bundle.entry[0].request"},
	} {
		code, body := do(t, "POST", srv.URL, tc.contentType, tc.body)
		if code != tc.status {
			t.Errorf("%s: %d, want %d\n%s", tc.name, code, tc.status, body)
			continue
		}
		if tc.status == 200 {
			continue
		}
		oo := validR4(t, tc.name+": the OperationOutcome", body)
		issue := oo["issue"].([]any)[0].(map[string]any)
		var expr string
		if e, ok := issue["expression"].([]any); ok {
			expr = e[0].(string)
		}
		if oo["resourceType"] != "OperationOutcome" || issue["code"] != tc.code || !strings.HasPrefix(expr, tc.expression) {
			t.Errorf("%s: issue %v, want code %s at %s", tc.name, issue, tc.code, tc.expression)
		}
	}
	// Only the twins were kept: a refused Bundle changes nothing, not even
	// the Patient of the one whose second entry failed.
	if st.storeTypes["Patient"] != 2 || st.storeTypes["Observation"] != 0 || st.storeRefused.Load() != 6 || st.storeBundles.Load() != 2 {
		t.Errorf("holds %v, %d refused, %d taken; want 2 Patients, 6 refused, 2 taken", st.storeTypes, st.storeRefused.Load(), st.storeBundles.Load())
	}
}
