package fhir

import (
	"os"
	"path/filepath"
	"testing"
)

// The spec's transaction example, entry by entry: fullUrl, resource and
// request, conditional headers included.
func TestEntriesSpecTransaction(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "spec", "valid", "Bundle-bundle-transaction.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Entries(r)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{FullURL: "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", Method: "POST", URL: "Patient"},
		{FullURL: "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059", Method: "POST", URL: "Patient", IfNoneExist: "identifier=http:/example.org/fhir/ids|234234"},
		{FullURL: "http://example.org/fhir/Patient/123", Method: "PUT", URL: "Patient/123"},
		{FullURL: "urn:uuid:74891afc-ed52-42a2-bcd7-f13d9b60f096", Method: "PUT", URL: "Patient?identifier=http:/example.org/fhir/ids|456456"},
		{FullURL: "http://example.org/fhir/Patient/123a", Method: "PUT", URL: "Patient/123a", IfMatch: `W/"2"`},
		{Method: "DELETE", URL: "Patient/234"},
		{Method: "DELETE", URL: "Patient?identifier=123456"},
		{FullURL: "urn:uuid:79378cb8-8f58-48e8-a5e8-60ac2755b674", Method: "POST", URL: "ValueSet/$lookup"},
		{Method: "GET", URL: "Patient?name=peter"},
		{Method: "GET", URL: "Patient/12334", IfNoneExist: ""},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(entries), len(want), entries)
	}
	for i, w := range want {
		g := entries[i]
		if g.FullURL != w.FullURL || g.Method != w.Method || g.URL != w.URL || g.IfNoneExist != w.IfNoneExist || g.IfMatch != w.IfMatch {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
		if hasResource := g.Resource.Message() != nil; hasResource != (w.Method == "POST" || w.Method == "PUT") {
			t.Errorf("entry %d (%s) has a resource: %v", i, w.Method, hasResource)
		}
	}
	if entries[0].Resource.Type() != "Patient" {
		t.Errorf("entry 0 is a %s", entries[0].Resource.Type())
	}
}

// What a transaction or batch must have, each refusal at its element.
func TestEntriesIssues(t *testing.T) {
	tests := []struct {
		name, body string
		code       IssueCode
		expression string
	}{
		{"not a Bundle", `{"resourceType":"Patient"}`, CodeValue, ""},
		{"a collection", `{"resourceType":"Bundle","type":"collection"}`, CodeValue, "Bundle.type"},
		{"an entry without a request", `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"}}]}`,
			CodeRequired, "Bundle.entry[0].request"},
		{"a POST without a resource", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"}}]}`,
			CodeRequired, "Bundle.entry[0].resource"},
		{"two entries, one fullUrl", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
			{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`,
			CodeDuplicate, "Bundle.entry[1].fullUrl"},
		{"a subject no entry has", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
			{"fullUrl":"urn:uuid:o","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
			 "subject":{"reference":"urn:uuid:q"}},"request":{"method":"POST","url":"Observation"}}]}`,
			CodeNotFound, "Bundle.entry[1].resource.subject"},
		{"a reference in a repeating element", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:r","resource":{"resourceType":"DiagnosticReport","status":"final","code":{"text":"x"},
			 "result":[{"reference":"Observation/1"},{"reference":"urn:uuid:missing"}]},"request":{"method":"POST","url":"DiagnosticReport"}}]}`,
			CodeNotFound, "Bundle.entry[0].resource.result[1]"},
		{"a reference in a choice", `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:o","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
			 "focus":[{"reference":"urn:uuid:o"}],"hasMember":[{"reference":"urn:uuid:o"}],
			 "extension":[{"url":"http://example.org/x","valueReference":{"reference":"urn:uuid:gone"}}]},
			 "request":{"method":"POST","url":"Observation"}}]}`,
			CodeNotFound, "Bundle.entry[0].resource.extension[0].valueReference"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decode([]byte(tc.body))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			_, err = Entries(r)
			inCheckIssue(t, err, tc.code, tc.expression)
		})
	}
}

// References between a transaction's entries that resolve are not
// issues, whichever way round the entries come.
func TestEntriesResolved(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:o","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
		 "subject":{"reference":"urn:uuid:p"}},"request":{"method":"POST","url":"Observation"}},
		{"fullUrl":"urn:uuid:p","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`
	r, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Entries(r)
	if err != nil || len(entries) != 2 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
}
