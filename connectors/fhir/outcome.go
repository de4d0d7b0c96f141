// This file is what careflow's FHIR API answers a body it refuses with:
// Issues, each an OperationOutcome.issue, and the OperationOutcome itself.

package fhir

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	oopb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/operation_outcome_go_proto"
)

// IssueCode is an OperationOutcome.issue.code, FHIR's IssueType.
type IssueCode string

// The issue codes careflow raises, and what it raises each for.
const (
	// CodeStructure: the body is not JSON, or an element is shaped
	// wrongly (an object where the element repeats, a name R4 does not
	// define).
	CodeStructure IssueCode = "structure"
	// CodeRequired: a required element is missing (Observation.code).
	CodeRequired IssueCode = "required"
	// CodeValue: a primitive's value is not of its type (a birthDate that
	// is not a date, an id with a character ids may not hold).
	CodeValue IssueCode = "value"
	// CodeCodeInvalid: a code outside the value set of a required binding
	// (Encounter.status "completed").
	CodeCodeInvalid IssueCode = "code-invalid"
	// CodeInvalid: resourceType names no R4 resource.
	CodeInvalid IssueCode = "invalid"
	// CodeNotSupported: an R4 resource careflow does not take (Supported).
	CodeNotSupported IssueCode = "not-supported"
	// CodeTooCostly: the body is larger or deeper than careflow reads.
	CodeTooCostly IssueCode = "too-costly"
	// CodeNotFound: a Bundle entry refers to a urn:uuid no entry has.
	CodeNotFound IssueCode = "not-found"
	// CodeDuplicate: two Bundle entries share a fullUrl.
	CodeDuplicate IssueCode = "duplicate"
	// CodeProcessing: a resource careflow read but cannot map to its
	// canonical event (Canonical's errors).
	CodeProcessing IssueCode = "processing"
)

// Severities of an Issue (IssueSeverity).
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity string    // SeverityError or SeverityWarning
	Code     IssueCode // CodeRequired, ...
	// Expression is the element's FHIRPath (Observation.code,
	// Bundle.entry[1].resource.subject); "" for the body as a whole.
	Expression string
	// Diagnostics is careflow's or google/fhir's description, never a
	// value from the body: it may be logged and shown to whoever sent it.
	Diagnostics string
}

// Issues is why careflow refused a FHIR body. Its text names issue codes
// and elements, never the body's values, so it may be logged.
type Issues struct {
	Issues []Issue
}

func (e *Issues) Error() string {
	parts := make([]string, 0, len(e.Issues))
	for _, is := range e.Issues {
		s := string(is.Code)
		if is.Expression != "" {
			s += " at " + is.Expression
		}
		if is.Diagnostics != "" {
			s += ": " + is.Diagnostics
		}
		parts = append(parts, s)
	}
	return "fhir: " + strings.Join(parts, "; ")
}

// Status is the HTTP status FHIR's RESTful API gives the first error:
// 404 for a resource type careflow does not take, 413 for a body too
// large or deep, 422 for a resource careflow read but cannot map, else
// 400 (the body could not be parsed or failed FHIR's own rules).
func (e *Issues) Status() int {
	for _, is := range e.Issues {
		if is.Severity != SeverityError {
			continue
		}
		switch is.Code {
		case CodeNotSupported:
			return http.StatusNotFound
		case CodeTooCostly:
			return http.StatusRequestEntityTooLarge
		case CodeProcessing:
			return http.StatusUnprocessableEntity
		}
		return http.StatusBadRequest
	}
	return http.StatusBadRequest
}

func inOne(code IssueCode, expression, diagnostics string) *Issues {
	return &Issues{Issues: []Issue{{Severity: SeverityError, Code: code, Expression: expression, Diagnostics: diagnostics}}}
}

// inIssueCodes are the IssueCodes as google/fhir's R4 enum.
var inIssueCodes = map[IssueCode]cpb.IssueTypeCode_Value{
	CodeStructure: cpb.IssueTypeCode_STRUCTURE, CodeRequired: cpb.IssueTypeCode_REQUIRED,
	CodeValue: cpb.IssueTypeCode_VALUE, CodeCodeInvalid: cpb.IssueTypeCode_CODE_INVALID,
	CodeInvalid: cpb.IssueTypeCode_INVALID, CodeNotSupported: cpb.IssueTypeCode_NOT_SUPPORTED,
	CodeTooCostly: cpb.IssueTypeCode_TOO_COSTLY, CodeNotFound: cpb.IssueTypeCode_NOT_FOUND,
	CodeDuplicate: cpb.IssueTypeCode_DUPLICATE, CodeProcessing: cpb.IssueTypeCode_PROCESSING,
}

// OperationOutcome is err as FHIR R4 OperationOutcome JSON: each Issue of
// an *Issues; an *Error (Canonical's) as a processing issue at its
// element; anything else as one exception issue whose diagnostics say
// only that careflow failed, since its text was not written for the
// sender and may quote what they sent.
func OperationOutcome(err error) []byte {
	var issues []Issue
	var is *Issues
	var fe *Error
	switch {
	case err == nil:
		issues = []Issue{{Severity: "information", Code: "informational", Diagnostics: "ok"}}
	case errors.As(err, &is):
		issues = is.Issues
	case errors.As(err, &fe):
		issues = []Issue{{Severity: SeverityError, Code: CodeProcessing, Expression: fe.Path,
			Diagnostics: fmt.Sprintf("careflow cannot map %s to its canonical event", fe.Path)}}
	default:
		issues = []Issue{{Severity: SeverityError, Code: "exception", Diagnostics: "careflow could not process the request"}}
	}
	out := &oopb.OperationOutcome{}
	for _, i := range issues {
		out.Issue = append(out.Issue, inOutcomeIssue(i))
	}
	b, jerr := JSON(out)
	if jerr != nil {
		// Every issue above is built from enums and plain strings; a
		// marshaller that refuses them is a bug in careflow, and the
		// client still needs an OperationOutcome.
		return []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception"}]}`)
	}
	return b
}

func inOutcomeIssue(i Issue) *oopb.OperationOutcome_Issue {
	sev := map[string]cpb.IssueSeverityCode_Value{
		SeverityError: cpb.IssueSeverityCode_ERROR, SeverityWarning: cpb.IssueSeverityCode_WARNING,
		"information": cpb.IssueSeverityCode_INFORMATION, "fatal": cpb.IssueSeverityCode_FATAL,
	}[i.Severity]
	if sev == cpb.IssueSeverityCode_INVALID_UNINITIALIZED {
		sev = cpb.IssueSeverityCode_ERROR
	}
	code, ok := inIssueCodes[i.Code]
	if !ok {
		code = map[IssueCode]cpb.IssueTypeCode_Value{
			"exception": cpb.IssueTypeCode_EXCEPTION, "informational": cpb.IssueTypeCode_INFORMATIONAL,
		}[i.Code]
		if code == cpb.IssueTypeCode_INVALID_UNINITIALIZED {
			code = cpb.IssueTypeCode_PROCESSING
		}
	}
	out := &oopb.OperationOutcome_Issue{
		Severity: &oopb.OperationOutcome_Issue_SeverityCode{Value: sev},
		Code:     &oopb.OperationOutcome_Issue_CodeType{Value: code},
	}
	if i.Diagnostics != "" {
		out.Diagnostics = &dpb.String{Value: i.Diagnostics}
	}
	if i.Expression != "" {
		out.Expression = []*dpb.String{{Value: i.Expression}}
	}
	return out
}
