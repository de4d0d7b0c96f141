// This file holds the issues careflow's FHIR API raises about a request
// rather than its body: who may write, versions, searches and storage.

package fhir

import cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"

// Issue codes of refused requests.
const (
	// CodeLogin: no credential, or one that does not verify (401).
	CodeLogin IssueCode = "login"
	// CodeForbidden: a credential that may not make this write (403).
	CodeForbidden IssueCode = "forbidden"
	// CodeConflict: If-Match names another version than the current (412).
	CodeConflict IssueCode = "conflict"
	// CodeMultipleMatches: a conditional create or update matches two or
	// more resources (412).
	CodeMultipleMatches IssueCode = "multiple-matches"
	// CodeTransient: Kafka did not take the write; resend (503).
	CodeTransient IssueCode = "transient"
)

func init() {
	for c, v := range map[IssueCode]cpb.IssueTypeCode_Value{
		CodeLogin: cpb.IssueTypeCode_LOGIN, CodeForbidden: cpb.IssueTypeCode_FORBIDDEN, CodeConflict: cpb.IssueTypeCode_CONFLICT,
		CodeMultipleMatches: cpb.IssueTypeCode_MULTIPLE_MATCHES, CodeTransient: cpb.IssueTypeCode_TRANSIENT,
	} {
		inIssueCodes[c] = v
	}
}

// NewIssue is one error issue.
func NewIssue(code IssueCode, expression, diagnostics string) *Issues {
	return inOne(code, expression, diagnostics)
}
