package fhir

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const obsJSON = `{"resourceType":"Observation","status":"final",
 "identifier":[{"system":"urn:careflow:authority:LIS","value":"F1-1","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"FILL"}]}}],
 "code":{"text":"glucose"},
 "subject":{"reference":"urn:uuid:6f1a"},
 "performer":[{"identifier":{"system":"https://trust.example.org/staff","value":"D1"}}],
 "basedOn":[{"reference":"ServiceRequest/sr1"}],
 "valueQuantity":{"value":5.10,"unit":"mmol/L"},
 "contained":[{"resourceType":"Patient","id":"p","generalPractitioner":[{"reference":"Practitioner/x"}]}]}`

func TestReferencesAndIdentifiers(t *testing.T) {
	refs := References([]byte(obsJSON))
	var got []string
	for _, r := range refs {
		s := r.Path + "=" + r.Reference
		if r.Identifier != nil {
			s += "#" + r.Identifier.Token()
		}
		got = append(got, s)
	}
	want := "Observation.basedOn[0]=ServiceRequest/sr1 Observation.performer[0]=#https://trust.example.org/staff|D1 Observation.subject=urn:uuid:6f1a"
	if strings.Join(got, " ") != want {
		t.Errorf("references\n got %s\nwant %s (a contained resource's are its own)", strings.Join(got, " "), want)
	}
	ids := Identifiers([]byte(obsJSON))
	if len(ids) != 1 || ids[0].Token() != "urn:careflow:authority:LIS|F1-1" || ids[0].Type != "FILL" {
		t.Errorf("identifiers %+v", ids)
	}
	if !ids[0].Matches(ParseToken("F1-1")) || !ids[0].Matches(ParseToken("urn:careflow:authority:LIS|F1-1")) || ids[0].Matches(ParseToken("other|F1-1")) {
		t.Error("token matching: a token without a system matches any system; with one, only it")
	}
}

func TestRewriteAndSetMeta(t *testing.T) {
	b, err := RewriteReferences([]byte(obsJSON), map[string]string{"urn:uuid:6f1a": "Patient/p9"})
	if err != nil {
		t.Fatal(err)
	}
	b, err = SetMeta(b, "o1", 3, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"subject":{"reference":"Patient/p9"}`, `"id":"o1"`, `"versionId":"3"`, `"lastUpdated":"2026-12-03T10:00:00.000Z"`, `"value":5.10`} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in %s", want, s)
		}
	}
	if !strings.HasPrefix(s, `{"resourceType":"Observation"`) {
		t.Errorf("resourceType is not first: %.40s", s)
	}
	if _, err := SetMeta([]byte(`{"resourceType":`), "x", 1, time.Now()); err == nil {
		t.Error("broken JSON: no error")
	}
}

func TestParseToken(t *testing.T) {
	stored := []Identifier{
		{System: "urn:careflow:authority:HOSP", Value: "A|B"},
		{System: "", Value: "T1"},
		{System: "urn:careflow:authority:HOSP", Value: "T1"},
	}
	tests := []struct {
		token string
		match []int // indexes of stored that match
	}{
		{`urn:careflow:authority:HOSP|A\|B`, []int{0}},
		{`urn:careflow:authority:HOSP|A|B`, []int{0}}, // after the first |, the value is taken whole
		{`|T1`, []int{1}},   // no system
		{`T1`, []int{1, 2}}, // any system
		{`urn:careflow:authority:HOSP|T1`, []int{2}},
	}
	for _, tc := range tests {
		tok := ParseToken(tc.token)
		var got []int
		for i, id := range stored {
			if id.Matches(tok) {
				got = append(got, i)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.match) {
			t.Errorf("%s matches %v, want %v", tc.token, got, tc.match)
		}
		if again := ParseToken(tok.Token()); again != tok {
			t.Errorf("%s: Token() %q reads back as %+v", tc.token, tok.Token(), again)
		}
	}
}
