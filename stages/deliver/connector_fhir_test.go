package deliver_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/smart"
	"github.com/careflow-health/careflow/stages/deliver"
)

// fhirServer is a FHIR server stand-in: it checks each transaction
// request as a server would see it and answers with the next canned
// answer (the last one repeats).
type fhirServer struct {
	t       *testing.T
	srv     *httptest.Server
	answers []fhirAnswer

	mu    sync.Mutex
	auths []string // Authorization of each request
	n     int
}

type fhirAnswer struct {
	status int
	header map[string]string
	body   []byte
}

func newFHIRServer(t *testing.T, answers ...fhirAnswer) *fhirServer {
	f := &fhirServer{t: t, answers: answers}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fhirServer) base() string { return f.srv.URL + "/fhir/r4" }

func (f *fhirServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	a := f.answers[min(f.n, len(f.answers)-1)]
	f.n++
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.mu.Unlock()
	for k, want := range map[string]string{"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", "X-Request-ID": "CF-1"} {
		if got := r.Header.Get(k); got != want {
			f.t.Errorf("%s %q, want %q", k, got, want)
		}
	}
	if r.Method != http.MethodPost || r.URL.Path != "/fhir/r4" || !bytes.Equal(body, transaction) {
		f.t.Errorf("%s %s with %d bytes; want the transaction POSTed to the base URL", r.Method, r.URL.Path, len(body))
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func (f *fhirServer) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.auths)
}

var transaction = []byte(`{"resourceType":"Bundle","type":"transaction","entry":[]}`)

func readFHIR(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fhir", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFHIRAnswers(t *testing.T) {
	bundle, oo400, oo422 := readFHIR(t, "transaction-response.json"), readFHIR(t, "outcome-400.json"), readFHIR(t, "outcome-422.json")
	retryAt := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		name      string
		answer    fhirAnswer
		delivered bool
		rejected  bool
		code      string // Result.Code for a rejection, the TransientError's for a transient failure
		location  string
		remoteIDs []string
		after     [2]time.Duration // the TransientError's Retry-After, within [lo, hi]
		text      string           // in Result.Text
	}{
		{name: "200 transaction-response", answer: fhirAnswer{status: 200, body: bundle}, delivered: true,
			remoteIDs: []string{"Patient/123/_history/1", "Encounter/enc-9/_history/4", "Observation/obs-77/_history/1"}},
		{name: "200 that is no Bundle", answer: fhirAnswer{status: 200, body: []byte("ok")}, delivered: true},
		{name: "400 OperationOutcome", answer: fhirAnswer{status: 400, body: oo400}, rejected: true,
			code: "fhir.required", location: "Observation.code", text: "minimum required = 1"},
		// The error issue, not the informational one before it; its
		// expression quotes a value, so it is no location.
		{name: "422 OperationOutcome", answer: fhirAnswer{status: 422, body: oo422}, rejected: true,
			code: "fhir.code-invalid", location: "", text: "Unknown identifier system"},
		{name: "404 without OperationOutcome", answer: fhirAnswer{status: 404, body: []byte("no such endpoint")}, rejected: true,
			code: "http.404", text: "no such endpoint"},
		{name: "429 Retry-After seconds", answer: fhirAnswer{status: 429, header: map[string]string{"Retry-After": "7"}},
			code: "http.429", after: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "503 Retry-After date", answer: fhirAnswer{status: 503, header: map[string]string{"Retry-After": retryAt}, body: oo400},
			code: "http.503", after: [2]time.Duration{28 * time.Second, 30 * time.Second}, text: "minimum required"},
		{name: "503 Retry-After too long", answer: fhirAnswer{status: 503, header: map[string]string{"Retry-After": "86400"}},
			code: "http.503", after: [2]time.Duration{deliver.MaxRetryAfter, deliver.MaxRetryAfter}},
		{name: "503 Retry-After past", answer: fhirAnswer{status: 503, header: map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}}, code: "http.503"},
		{name: "503 Retry-After unreadable", answer: fhirAnswer{status: 503, header: map[string]string{"Retry-After": "soon"}}, code: "http.503"},
		{name: "500", answer: fhirAnswer{status: 500}, code: "http.500"},
		{name: "408", answer: fhirAnswer{status: 408}, code: "http.408"},
		{name: "401 without a token", answer: fhirAnswer{status: 401}, code: deliver.CodeFHIRUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newFHIRServer(t, c.answer)
			conn := deliver.FHIR{BaseURL: srv.base(), HTTP: srv.srv.Client(), Timeout: 5 * time.Second}
			res, err := conn.Send(context.Background(), "CF-1", transaction)
			if res.HTTPStatus != c.answer.status || res.Delivered != c.delivered || res.Rejected != c.rejected {
				t.Fatalf("result %+v, err %v; want HTTP %d delivered %v rejected %v", res, err, c.answer.status, c.delivered, c.rejected)
			}
			if c.delivered || c.rejected {
				if err != nil {
					t.Fatalf("error %v for an answer that is not transient", err)
				}
				if res.Code != c.code || res.Location != c.location {
					t.Errorf("code %q location %q, want %q %q", res.Code, res.Location, c.code, c.location)
				}
			} else {
				var te *deliver.TransientError
				if !errors.As(err, &te) || te.Code != c.code {
					t.Fatalf("error %v, want a transient %s", err, c.code)
				}
				if te.After < c.after[0] || te.After > c.after[1] || te.RetryAfter() != te.After {
					t.Errorf("Retry-After %v, want within [%v, %v]", te.After, c.after[0], c.after[1])
				}
			}
			if !slices.Equal(res.RemoteIDs, c.remoteIDs) {
				t.Errorf("remote ids %q, want %q", res.RemoteIDs, c.remoteIDs)
			}
			if !strings.Contains(res.Text, c.text) {
				t.Errorf("text %q does not hold %q", res.Text, c.text)
			}
			if n := len(srv.requests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
}

func TestFHIRTransportFailures(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does the server notice the client
		// hanging up, which ends r's context.
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	cases := []struct {
		name string
		url  string
		code string
	}{
		{"timeout", slow.URL, deliver.CodeHTTPTimeout},
		{"connection refused", closed.URL, deliver.CodeHTTPConnection},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := deliver.FHIR{BaseURL: c.url, Timeout: 100 * time.Millisecond}.Send(context.Background(), "CF-1", transaction)
			var te *deliver.TransientError
			if !errors.As(err, &te) || te.Code != c.code {
				t.Fatalf("error %v, want a transient %s", err, c.code)
			}
		})
	}
}

// tokenEndpoint hands out tok-1, tok-2, ... (or refuses, with status),
// counting requests. Assertions themselves are connectors/smart's test.
type tokenEndpoint struct {
	srv    *httptest.Server
	status int
	mu     sync.Mutex
	n      int
}

func newTokenEndpoint(t *testing.T) *tokenEndpoint {
	te := &tokenEndpoint{}
	te.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		te.mu.Lock()
		te.n++
		n, status := te.n, te.status
		te.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.ParseForm() != nil || r.PostForm.Get("client_assertion") == "" {
			status = http.StatusBadRequest
		}
		if status != 0 {
			w.WriteHeader(status)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer","expires_in":3600}`, n)
	}))
	t.Cleanup(te.srv.Close)
	return te
}

func (te *tokenEndpoint) count() int {
	te.mu.Lock()
	defer te.mu.Unlock()
	return te.n
}

func (te *tokenEndpoint) source(t *testing.T) *smart.Source {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader) // never committed
	if err != nil {
		t.Fatal(err)
	}
	return smart.TokenSource(context.Background(), smart.Config{
		TokenURL: te.srv.URL + "/token", ClientID: "careflow", KeyID: "k1", Key: key,
		Scopes: []string{"system/*.write"}, HTTPClient: te.srv.Client(),
	}).(*smart.Source)
}

func TestFHIRBearer(t *testing.T) {
	bundle := readFHIR(t, "transaction-response.json")
	ok := fhirAnswer{status: 200, body: bundle}
	unauthorized := fhirAnswer{status: 401, body: []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}`)}
	cases := []struct {
		name      string
		answers   []fhirAnswer
		refuse    int      // token endpoint status; 0 grants
		warm      bool     // a token is cached before the send
		auths     []string // Authorization of each FHIR request
		tokens    int      // token requests, in all
		delivered bool
		code      string // the transient error's
	}{
		{"bearer sent", []fhirAnswer{ok}, 0, false, []string{"Bearer tok-1"}, 1, true, ""},
		{"cached token reused", []fhirAnswer{ok}, 0, true, []string{"Bearer tok-1"}, 1, true, ""},
		// The server no longer takes the cached token: it is dropped and
		// the request sent once more with a new one.
		{"401 then 200: new token, one retry", []fhirAnswer{unauthorized, ok}, 0, true, []string{"Bearer tok-1", "Bearer tok-2"}, 2, true, ""},
		{"401 twice: transient", []fhirAnswer{unauthorized}, 0, false, []string{"Bearer tok-1", "Bearer tok-2"}, 2, false, deliver.CodeFHIRUnauthorized},
		{"token endpoint refuses: nothing sent", []fhirAnswer{ok}, 401, false, nil, 1, false, deliver.CodeFHIRToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			te := newTokenEndpoint(t)
			te.status = c.refuse
			src := te.source(t)
			if c.warm {
				if _, err := src.Token(); err != nil {
					t.Fatal(err)
				}
			}
			srv := newFHIRServer(t, c.answers...)
			res, err := deliver.FHIR{BaseURL: srv.base(), HTTP: srv.srv.Client(), Token: src}.Send(context.Background(), "CF-1", transaction)
			if got := srv.requests(); !slices.Equal(got, c.auths) {
				t.Errorf("FHIR requests with Authorization %q, want %q", got, c.auths)
			}
			if got := te.count(); got != c.tokens {
				t.Errorf("%d token requests, want %d", got, c.tokens)
			}
			if c.delivered {
				if err != nil || !res.Delivered || len(res.RemoteIDs) != 3 {
					t.Fatalf("result %+v, err %v; want delivered with the server's ids", res, err)
				}
				return
			}
			var terr *deliver.TransientError
			if !errors.As(err, &terr) || terr.Code != c.code {
				t.Fatalf("error %v, want a transient %s", err, c.code)
			}
			if c.refuse != 0 {
				var tokErr *smart.TokenError
				if !errors.As(err, &tokErr) || tokErr.Status != c.refuse {
					t.Errorf("error %v does not carry the token endpoint's refusal", err)
				}
			}
		})
	}
}
