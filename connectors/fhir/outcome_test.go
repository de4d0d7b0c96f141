package fhir

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// Decode's refusals as OperationOutcomes that google/fhir reads back,
// with each issue's code and expression, and without the values that
// were refused (a birth date, a code, the body's bytes).
func TestOperationOutcome(t *testing.T) {
	tests := []struct {
		file       string
		severity   string
		code       string
		expression string
		secret     string // in the body, never in the outcome
	}{
		{"ai4.json", "ERROR", "VALUE", "Patient.birthDate", "not a date"},
		{"synthea.json", "ERROR", "CODE_INVALID", "Encounter.status", "completed"},
		{"json-comma-bad-1.json", "ERROR", "STRUCTURE", "", "Simmons"},
		{"resource-invalid-id-1.json", "ERROR", "NOT_SUPPORTED", "", "foobar"},
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "spec", "invalid", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, derr := Decode(body)
			out := OperationOutcome(derr)
			if bytes.Contains(out, []byte(tc.secret)) {
				t.Errorf("the outcome quotes the body's %q: %s", tc.secret, out)
			}
			m, err := u.Unmarshal(out)
			if err != nil {
				t.Fatalf("google/fhir refuses the outcome %s: %v", out, err)
			}
			oo := m.(*bcrpb.ContainedResource).GetOperationOutcome()
			for _, is := range oo.GetIssue() {
				var expr string
				if len(is.GetExpression()) > 0 {
					expr = is.GetExpression()[0].GetValue()
				}
				if is.GetSeverity().GetValue().String() == tc.severity && is.GetCode().GetValue().String() == tc.code &&
					expr == tc.expression && is.GetDiagnostics().GetValue() != "" {
					return
				}
			}
			t.Errorf("no %s %s issue at %q with diagnostics in %s", tc.severity, tc.code, tc.expression, out)
		})
	}
}

// Canonical's *Error is a processing issue at its element; an error
// careflow did not write for a sender says only that careflow failed.
func TestOperationOutcomeOtherErrors(t *testing.T) {
	out := OperationOutcome(&Error{Path: "Observation.subject", Source: "PID", Err: errors.New("Patient/123 HARPER")})
	for _, want := range []string{`"code":"processing"`, `"expression":["Observation.subject"]`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
	if bytes.Contains(out, []byte("HARPER")) {
		t.Errorf("the outcome quotes the error's text: %s", out)
	}
	out = OperationOutcome(errors.New("dial tcp 10.0.0.1: refused"))
	if !bytes.Contains(out, []byte(`"code":"exception"`)) || bytes.Contains(out, []byte("10.0.0.1")) {
		t.Errorf("an internal error as %s", out)
	}
}

// FHIR's RESTful statuses by the first error's code.
func TestIssuesStatus(t *testing.T) {
	tests := []struct {
		code IssueCode
		want int
	}{
		{CodeStructure, 400}, {CodeRequired, 400}, {CodeValue, 400}, {CodeCodeInvalid, 400}, {CodeInvalid, 400},
		{CodeNotFound, 400}, {CodeNotSupported, 404}, {CodeTooCostly, 413}, {CodeProcessing, 422},
	}
	for _, tc := range tests {
		if got := inOne(tc.code, "", "").Status(); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.code, got, tc.want)
		}
	}
}
