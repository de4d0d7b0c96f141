// This file is the FHIR connector: a rendered transaction Bundle POSTed to
// a FHIR R4 server, its answer read with google/fhir's R4 protos.

package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	oopb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/operation_outcome_go_proto"
	"golang.org/x/oauth2"

	"github.com/careflow-health/careflow/connectors/httpx"
)

// FHIRContentType is the media type of FHIR JSON, sent as Content-Type
// and Accept.
const FHIRContentType = "application/fhir+json"

// Codes of the FHIR connector, beside the HTTP family (CodeHTTP) and
// CodeHTTPConnection and CodeHTTPTimeout, which it shares.
const (
	// CodeFHIRToken: no access token could be had from the authorization
	// server (unreachable, or it refused careflow's client: see the
	// error). Transient, so the breaker opens and the input waits.
	CodeFHIRToken = "fhir.token"
	// CodeFHIRUnauthorized: the FHIR server answered 401, with a token
	// fetched anew after a first 401, or without one configured. It is
	// careflow's credentials that are wrong, not the message: transient.
	CodeFHIRUnauthorized = "fhir.unauthorized"
)

// CodeFHIR is the code of a rejection whose OperationOutcome names an
// issue type: fhir.invalid, fhir.required, fhir.code-invalid, ...
func CodeFHIR(issueType string) string { return "fhir." + issueType }

// MaxRetryAfter caps a server's Retry-After, so that one odd answer
// ("come back tomorrow") cannot pause an input for longer than this.
const MaxRetryAfter = 10 * time.Minute

// maxFHIRResponse bounds what is read of a response: a transaction-
// response for a large Bundle, with Prefer return=minimal, is far less.
const maxFHIRResponse = 4 << 20

// FHIR posts a transaction Bundle to a FHIR server's base URL (FHIR R4
// RESTful API, transaction): 2xx delivered, the server's ids recorded;
// 408, 429 and 5xx transient, honouring Retry-After; 401 transient (after
// one retry with a new token); other 4xx rejected, with the
// OperationOutcome's issue type and expression as code and location.
type FHIR struct {
	// BaseURL is the server's service base URL, e.g.
	// https://fhir.example.org/r4: a transaction is POSTed to it.
	BaseURL string
	// HTTP makes the requests. Default: http.DefaultClient.
	HTTP *http.Client
	// Timeout bounds one request, headers and body. Default:
	// httpx.DefaultTimeout (10s).
	Timeout time.Duration
	// Token, when set, gives the bearer token of each request
	// (smart.TokenSource). If it also has Invalidate(*oauth2.Token), as
	// smart's does, a 401 drops the token and the request is sent once
	// more with a new one.
	Token oauth2.TokenSource
}

// tokenInvalidator is a token source that can drop a token a resource
// server refused (smart.Source).
type tokenInvalidator interface{ Invalidate(*oauth2.Token) }

// Close implements Connector: it closes idle keep-alive connections.
func (c FHIR) Close(context.Context) error {
	c.client().CloseIdleConnections()
	return nil
}

// Send implements Connector.
func (c FHIR) Send(ctx context.Context, controlID string, payload []byte) (Result, error) {
	start := time.Now()
	tok, err := c.token()
	if err != nil {
		return Result{Latency: time.Since(start)}, &TransientError{Code: CodeFHIRToken, Err: fmt.Errorf("get an access token for %s: %w", c.redacted(), err)}
	}
	resp, err := c.post(ctx, controlID, payload, tok)
	if inv, ok := c.Token.(tokenInvalidator); ok && err == nil && resp.status == http.StatusUnauthorized {
		// A token the server no longer takes (revoked, or it restarted):
		// drop it and try once more with a new one, before calling the
		// credentials wrong.
		inv.Invalidate(tok)
		if tok, err = c.token(); err != nil {
			return Result{Latency: time.Since(start)}, &TransientError{Code: CodeFHIRToken, Err: fmt.Errorf("get a new access token for %s after a 401: %w", c.redacted(), err)}
		}
		resp, err = c.post(ctx, controlID, payload, tok)
	}
	lat := time.Since(start)
	if err != nil {
		code := CodeHTTPConnection
		if errors.Is(err, context.DeadlineExceeded) {
			code = CodeHTTPTimeout
		}
		return Result{Latency: lat}, &TransientError{Code: code, Err: err}
	}
	r := Result{HTTPStatus: resp.status, Latency: lat, Text: excerpt(resp.body)}
	switch s := resp.status; {
	case s >= 200 && s < 300:
		r.Delivered = true
		r.RemoteIDs = locations(resp.body)
		return r, nil
	case s == http.StatusUnauthorized:
		return r, &TransientError{Code: CodeFHIRUnauthorized, Err: fmt.Errorf("FHIR server %s answered HTTP 401: check the client's registration and scopes", c.redacted())}
	case s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s >= 500:
		err := fmt.Errorf("destination answered HTTP %d", s)
		if resp.retryAfter > 0 {
			err = fmt.Errorf("destination answered HTTP %d, Retry-After %s", s, resp.retryAfter)
		}
		return r, &TransientError{Code: CodeHTTP(s), Err: err, After: resp.retryAfter}
	default:
		r.Rejected = true
		r.Code, r.Location = CodeHTTP(s), ""
		if code, loc := firstIssue(resp.body); code != "" {
			r.Code, r.Location = CodeFHIR(code), loc
		}
		return r, nil
	}
}

type fhirResponse struct {
	status     int
	body       []byte
	retryAfter time.Duration
}

func (c FHIR) post(ctx context.Context, controlID string, payload []byte, tok *oauth2.Token) (fhirResponse, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = httpx.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL, bytes.NewReader(payload))
	if err != nil {
		return fhirResponse{}, fmt.Errorf("build FHIR transaction request: %w", err)
	}
	req.Header.Set("Content-Type", FHIRContentType)
	req.Header.Set("Accept", FHIRContentType)
	// The response's entries need only their locations, not the resources
	// echoed back.
	req.Header.Set("Prefer", "return=minimal")
	// Servers log it (HAPI, Azure, Google): a delivery can be traced on
	// both sides by its control id, which is not patient data.
	req.Header.Set("X-Request-ID", controlID)
	if tok != nil {
		tok.SetAuthHeader(req)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return fhirResponse{}, err // *url.Error; wraps context.DeadlineExceeded on timeout
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFHIRResponse))
	if err != nil {
		return fhirResponse{}, fmt.Errorf("read the answer of %s (HTTP %d): %w", c.redacted(), resp.StatusCode, err)
	}
	return fhirResponse{status: resp.StatusCode, body: body, retryAfter: retryAfterHeader(resp.Header.Get("Retry-After"), time.Now())}, nil
}

func (c FHIR) token() (*oauth2.Token, error) {
	if c.Token == nil {
		return nil, nil
	}
	return c.Token.Token()
}

func (c FHIR) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// redacted is the base URL without a password, for errors.
func (c FHIR) redacted() string {
	req, err := http.NewRequest(http.MethodPost, c.BaseURL, nil)
	if err != nil {
		return "(FHIR base URL)"
	}
	return req.URL.Redacted()
}

// retryAfterHeader reads Retry-After (RFC 9110 §10.2.3): delay seconds
// or an HTTP date, capped at MaxRetryAfter; 0 when absent, past or
// unreadable.
func retryAfterHeader(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// unmarshaller reads servers' answers. It does not validate: a server's
// Bundle that misses something careflow's validator wants is still its
// answer, and a delivered message must not fail on it.
var unmarshaller = func() *jsonformat.Unmarshaller {
	u, err := jsonformat.NewUnmarshallerWithoutValidation("UTC", fhirversion.R4)
	if err != nil {
		panic(err) // UTC and R4 are always there
	}
	return u
}()

// locations are the transaction-response entries' response.location, in
// entry order: the ids the server gave what it stored
// ("Patient/123/_history/1"). An answer that is not a Bundle gives none;
// the transaction was accepted all the same.
func locations(body []byte) []string {
	if len(body) == 0 {
		return nil
	}
	m, err := unmarshaller.Unmarshal(body)
	if err != nil {
		return nil
	}
	cr, ok := m.(*bcrpb.ContainedResource)
	if !ok {
		return nil
	}
	var out []string
	for _, e := range cr.GetBundle().GetEntry() {
		if loc := e.GetResponse().GetLocation().GetValue(); loc != "" {
			out = append(out, loc)
		}
	}
	return out
}

// fhirPathShape is a FHIRPath expression that only names elements, with
// indexes: "Observation.code", "Patient.identifier[0].value". Anything
// else (a where() with a value in it) may quote the patient, so it is not
// a location; it stays in the OperationOutcome kept as Text.
var fhirPathShape = regexp.MustCompile(`^[A-Z][A-Za-z]*(\[[0-9]{1,4}\])?(\.[a-z][A-Za-z0-9]*(\[[0-9]{1,4}\])?)*$`)

// maxExpression bounds a location's length, as avro.MaxErrorDetail does a
// detail's: an element path is short.
const maxExpression = 256

// firstIssue is the issue type and expression of an OperationOutcome's
// first error (or fatal) issue, or of its first issue when none is an
// error: servers often put an informational one first. The type is a
// code of FHIR's IssueType value set (the enum's name in FHIR's
// spelling); "" when body is not an OperationOutcome.
func firstIssue(body []byte) (code, location string) {
	if len(body) == 0 {
		return "", ""
	}
	m, err := unmarshaller.Unmarshal(body)
	if err != nil {
		return "", ""
	}
	cr, ok := m.(*bcrpb.ContainedResource)
	if !ok {
		return "", ""
	}
	issues := cr.GetOperationOutcome().GetIssue()
	if len(issues) == 0 {
		return "", ""
	}
	pick := issues[0]
	for _, is := range issues {
		if sev := is.GetSeverity().GetValue(); sev == cpb.IssueSeverityCode_ERROR || sev == cpb.IssueSeverityCode_FATAL {
			pick = is
			break
		}
	}
	return issueType(pick), issueExpression(pick)
}

func issueType(is *oopb.OperationOutcome_Issue) string {
	v := is.GetCode().GetValue()
	if v == cpb.IssueTypeCode_INVALID_UNINITIALIZED {
		return ""
	}
	// The enum's names are FHIR's codes upper-cased with _ for -:
	// CODE_INVALID is code-invalid.
	return strings.ReplaceAll(strings.ToLower(v.String()), "_", "-")
}

func issueExpression(is *oopb.OperationOutcome_Issue) string {
	for _, e := range is.GetExpression() {
		if v := e.GetValue(); len(v) <= maxExpression && fhirPathShape.MatchString(v) {
			return e.GetValue()
		}
	}
	return ""
}
