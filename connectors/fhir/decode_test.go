package fhir

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every R4 example in testdata/spec/valid decodes, as its type, with its id.
func TestDecodeSpecValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "spec", "valid", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid examples: %v", err)
	}
	types := map[string]int{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			// The files are named Type-id.json, as in the examples package.
			typ, id, _ := strings.Cut(strings.TrimSuffix(filepath.Base(f), ".json"), "-")
			if r.Type() != typ || r.ID() != id {
				t.Errorf("decoded %s/%s, want %s/%s", r.Type(), r.ID(), typ, id)
			}
			types[r.Type()]++
		})
	}
	for _, typ := range Supported {
		if types[typ] < 2 {
			t.Errorf("%d valid examples of %s, want at least 2", types[typ], typ)
		}
	}
}

// Every invalid file in testdata/spec/invalid/manifest.json is refused
// with an issue of the manifest's code at its expression, and the status
// it lists.
func TestDecodeSpecInvalid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "spec", "invalid", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		File, Code, Expression string
		Status                 int
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.File+"/"+tc.Expression, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "spec", "invalid", tc.File))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Decode(body)
			inCheckIssue(t, err, IssueCode(tc.Code), tc.Expression)
			var is *Issues
			if errors.As(err, &is) && is.Status() != tc.Status {
				t.Errorf("status %d, want %d", is.Status(), tc.Status)
			}
		})
	}
}

// inCheckIssue fails unless err is *Issues with one issue of code at
// expression.
func inCheckIssue(t *testing.T, err error, code IssueCode, expression string) {
	t.Helper()
	var is *Issues
	if !errors.As(err, &is) {
		t.Fatalf("error %v (%T), want *Issues", err, err)
	}
	for _, i := range is.Issues {
		if i.Code == code && i.Expression == expression {
			return
		}
	}
	t.Errorf("issues %+v, want %s at %q", is.Issues, code, expression)
}

// Bodies the spec's files do not cover, made from its valid examples by
// one edit each: the distinct codes of the three ways a body is not a
// resource careflow takes, and google/fhir's paths turned into FHIRPath
// (choice elements, Bundle entries, the validator's required elements).
func TestDecodeIssues(t *testing.T) {
	tests := []struct {
		name, file string
		inEdit     func(m map[string]any)
		raw        string // the body, when not an edited file
		code       IssueCode
		expression string
	}{
		{name: "not JSON", raw: `{"resourceType": "Patient",`, code: CodeStructure},
		{name: "not an object", raw: `["Patient"]`, code: CodeStructure},
		{name: "no resourceType", raw: `{"id": "x"}`, code: CodeRequired},
		{name: "not an R4 type", raw: `{"resourceType": "Patients"}`, code: CodeInvalid},
		{name: "an R4 type careflow does not take", raw: `{"resourceType": "Medication"}`, code: CodeNotSupported},
		{name: "missing required element", file: "Observation-f001.json", inEdit: func(m map[string]any) { delete(m, "code") },
			code: CodeRequired, expression: "Observation.code"},
		{name: "missing required element of a backbone", file: "Observation-f001.json", inEdit: func(m map[string]any) {
			m["component"] = []any{map[string]any{"valueString": "x"}}
		}, code: CodeRequired, expression: "Observation.component[0].code"},
		{name: "missing required element inside a choice", file: "Observation-f001.json", inEdit: func(m map[string]any) {
			delete(m, "valueQuantity")
			m["valueSampledData"] = map[string]any{"period": 1, "dimensions": 1}
		}, code: CodeRequired, expression: "Observation.valueSampledData.origin"},
		{name: "bad value inside a choice", file: "Observation-f001.json", inEdit: func(m map[string]any) {
			m["valueQuantity"].(map[string]any)["value"] = "six"
		}, code: CodeValue, expression: "Observation.valueQuantity.value"},
		{name: "code outside a required binding", file: "Patient-example.json", inEdit: func(m map[string]any) { m["gender"] = "m" },
			code: CodeCodeInvalid, expression: "Patient.gender"},
		{name: "a Bundle entry's resource", file: "Bundle-bundle-transaction.json", inEdit: func(m map[string]any) {
			m["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["birthDate"] = "1974-13-25"
		}, code: CodeValue, expression: "Bundle.entry[0].resource.birthDate"},
		{name: "a Bundle entry's missing required element", file: "Bundle-bundle-transaction.json", inEdit: func(m map[string]any) {
			m["entry"].([]any)[0].(map[string]any)["resource"] = map[string]any{"resourceType": "Observation", "status": "final"}
		}, code: CodeRequired, expression: "Bundle.entry[0].resource.code"},
		{name: "a Bundle entry of a type R4 does not define", file: "Bundle-bundle-transaction.json", inEdit: func(m map[string]any) {
			m["entry"].([]any)[0].(map[string]any)["resource"] = map[string]any{"resourceType": "Patients"}
		}, code: CodeInvalid, expression: "Bundle.entry[0].resource"},
		{name: "too deep", raw: `{"resourceType":"Patient","extension":[` + strings.Repeat(`{"url":"u","extension":[`, 70) +
			`{"url":"u"}` + strings.Repeat(`]}`, 70) + `]}`, code: CodeTooCostly, expression: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.raw)
			if tc.file != "" {
				body = inEditExample(t, tc.file, tc.inEdit)
			}
			_, err := Decode(body)
			if tc.code == CodeTooCostly {
				// google/fhir names the element where it stopped; the code is the point
				var is *Issues
				if !errors.As(err, &is) || is.Issues[0].Code != CodeTooCostly {
					t.Fatalf("error %v, want too-costly", err)
				}
				return
			}
			inCheckIssue(t, err, tc.code, tc.expression)
		})
	}
}

// inEditExample is a valid spec example with one edit.
func inEditExample(t *testing.T, name string, inEdit func(map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "spec", "valid", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	inEdit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A body over MaxBytes is refused before it is parsed.
func TestDecodeTooLarge(t *testing.T) {
	_, err := Decode(make([]byte, MaxBytes+1))
	inCheckIssue(t, err, CodeTooCostly, "")
	var is *Issues
	if errors.As(err, &is) && is.Status() != 413 {
		t.Errorf("status %d, want 413", is.Status())
	}
}

// The version a client sent in meta.versionId.
func TestDecodeVersion(t *testing.T) {
	r, err := Decode([]byte(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"7"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Type() != "Patient" || r.ID() != "p1" || r.VersionID() != "7" {
		t.Errorf("got %s/%s version %s", r.Type(), r.ID(), r.VersionID())
	}
}

// Decode of the spec's glucose Observation, the ingest hot path.
func BenchmarkDecode(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "spec", "valid", "Observation-f001.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
