// This file is the demo's FHIR server, careflow's destination fhir-store:
// it takes FHIR R4 transaction Bundles as a FHIR server does (POST to its
// base), each entry's resource validated by google/fhir's unmarshaller,
// conditional updates matched on identifier, urn:uuid references
// rewritten to the ids it assigns, and answers with a transaction-response
// Bundle. It keeps everything in memory, counts what it holds for the
// summary, and lets people look (GET /{type}/{id}, GET
// /{type}?identifier=system|value).

package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"

	"github.com/careflow-health/careflow/connectors/fhir"
)

// DefaultFHIRStore is where the demo FHIR server listens.
const DefaultFHIRStore = "127.0.0.1:6665"

// maxStoreBody bounds a Bundle the store reads, as careflow's own FHIR
// interfaces do.
const maxStoreBody = fhir.MaxBytes

// fhirStore is the demo FHIR server. Construct with newFHIRStore.
type fhirStore struct {
	st  *stats
	now func() time.Time

	mu     sync.Mutex
	byType map[string]map[string]*storedResource // type → id → current version
	seq    int                                   // the last id assigned
}

// storedResource is the current version of one resource.
type storedResource struct {
	typ, id string
	version int
	updated time.Time
	body    []byte // as written, with id, meta and references set
	ids     []fhir.Identifier
}

func (r *storedResource) location() string {
	return r.typ + "/" + r.id + "/_history/" + strconv.Itoa(r.version)
}

func (r *storedResource) etag() string { return `W/"` + strconv.Itoa(r.version) + `"` }

func newFHIRStore(st *stats) *fhirStore {
	return &fhirStore{st: st, now: time.Now, byType: map[string]map[string]*storedResource{}}
}

// storeError is a request the store refuses: its status and why, as the
// OperationOutcome says it.
type storeError struct {
	status int
	err    *fhir.Issues
}

func refuse(status int, code fhir.IssueCode, expression, diagnostics string) *storeError {
	return &storeError{status: status, err: fhir.NewIssue(code, expression, diagnostics)}
}

// handler serves the store at / and, as careflow's destination URL may
// name it, at /fhir.
func (s *fhirStore) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{$}", s.serveTransaction)
	mux.HandleFunc("GET /{type}", s.serveSearch)
	mux.HandleFunc("GET /{type}/{id}", s.serveRead)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeStoreError(w, refuse(http.StatusNotFound, fhir.CodeNotSupported, "",
			"the demo FHIR store takes transaction Bundles (POST to its base) and answers GET /{type}/{id} and GET /{type}?identifier=system|value"))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := strings.CutPrefix(r.URL.Path, "/fhir"); ok && (p == "" || p[0] == '/') {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + strings.TrimPrefix(p, "/")
			r2.URL.RawPath = ""
			r = r2
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *fhirStore) serveTransaction(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != fhir.ContentType && mt != "application/json") {
		s.st.storeRefused.Add(1)
		writeStoreError(w, refuse(http.StatusUnsupportedMediaType, fhir.CodeNotSupported, "", "send Content-Type "+fhir.ContentType))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxStoreBody))
	if err != nil {
		s.st.storeRefused.Add(1)
		writeStoreError(w, refuse(http.StatusRequestEntityTooLarge, fhir.CodeTooCostly, "", fmt.Sprintf("the store reads Bundles of at most %d bytes", maxStoreBody)))
		return
	}
	resp, serr := s.transaction(body)
	if serr != nil {
		s.st.storeRefused.Add(1)
		writeStoreError(w, serr)
		return
	}
	s.st.storeBundles.Add(1)
	w.Header().Set("Content-Type", fhir.ContentType)
	w.WriteHeader(http.StatusOK)
	w.Write(resp)
}

// storeStep is what the store will do for one entry of a transaction.
type storeStep struct {
	entry   fhir.Entry
	body    []byte // the entry's resource as JSON
	typ, id string
	cur     *storedResource // the version it replaces; nil for a create
	keep    bool            // a conditional create that matched: nothing is written
}

// transaction validates bundle, applies every entry or none, and returns
// the transaction-response Bundle.
func (s *fhirStore) transaction(bundle []byte) ([]byte, *storeError) {
	res, err := fhir.Decode(bundle)
	var is *fhir.Issues
	switch {
	case errors.As(err, &is):
		return nil, &storeError{status: http.StatusBadRequest, err: is}
	case err != nil:
		return nil, refuse(http.StatusInternalServerError, "exception", "", "the store could not read the Bundle")
	case res.Type() != "Bundle":
		return nil, refuse(http.StatusBadRequest, fhir.CodeInvalid, "", "post a transaction Bundle to the base, not a "+res.Type())
	}
	if res.Contained().GetBundle().GetType().GetValue() != cpb.BundleTypeCode_TRANSACTION {
		return nil, refuse(http.StatusBadRequest, fhir.CodeNotSupported, "Bundle.type", "the demo FHIR store takes transaction Bundles")
	}
	entries, err := fhir.Entries(res)
	if errors.As(err, &is) {
		return nil, &storeError{status: http.StatusBadRequest, err: is}
	} else if err != nil {
		return nil, refuse(http.StatusBadRequest, fhir.CodeStructure, "", "the Bundle's entries could not be read")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	steps := make([]storeStep, 0, len(entries))
	refs := map[string]string{} // fullUrl → Type/id
	for i, e := range entries {
		st, serr := s.plan(i, e)
		if serr != nil {
			return nil, serr
		}
		steps = append(steps, st)
		if e.FullURL != "" {
			refs[e.FullURL] = st.typ + "/" + st.id
		}
	}
	now := s.now()
	out := make([]fhir.ResponseEntry, 0, len(steps))
	var written []*storedResource
	for i, st := range steps {
		if st.keep {
			out = append(out, fhir.ResponseEntry{Status: "200 OK", Location: st.cur.location(), ETag: st.cur.etag(), LastModified: st.cur.updated})
			continue
		}
		version := 1
		if st.cur != nil {
			version = st.cur.version + 1
		}
		body, err := fhir.RewriteReferences(st.body, refs)
		if err == nil {
			body, err = fhir.SetMeta(body, st.id, version, now)
		}
		if err != nil {
			return nil, refuse(http.StatusBadRequest, fhir.CodeStructure, fmt.Sprintf("Bundle.entry[%d].resource", i), "the resource could not be stored")
		}
		sr := &storedResource{typ: st.typ, id: st.id, version: version, updated: now, body: body, ids: fhir.Identifiers(body)}
		written = append(written, sr)
		status := "201 Created"
		if st.cur != nil {
			status = "200 OK"
		}
		out = append(out, fhir.ResponseEntry{Status: status, Location: sr.location(), ETag: sr.etag(), LastModified: now})
	}
	resp, err := fhir.ResponseBundle("transaction-response", strconv.FormatInt(now.UnixNano(), 36), out)
	if err != nil {
		return nil, refuse(http.StatusInternalServerError, "exception", "", "the store could not write its response")
	}
	// Only now, with every entry planned and written out, is anything
	// kept: a transaction is all or nothing.
	for _, sr := range written {
		if s.byType[sr.typ] == nil {
			s.byType[sr.typ] = map[string]*storedResource{}
		}
		if _, ok := s.byType[sr.typ][sr.id]; !ok {
			s.st.storeCreated(sr.typ)
		}
		s.byType[sr.typ][sr.id] = sr
	}
	return resp, nil
}

// plan decides what entry i asks: a conditional update on identifier
// (update the one match, else create), an update by id (created when
// absent), or a create (conditional on If-None-Exist). s.mu is held.
func (s *fhirStore) plan(i int, e fhir.Entry) (storeStep, *storeError) {
	at := fmt.Sprintf("Bundle.entry[%d].request", i)
	path, query, _ := strings.Cut(e.URL, "?")
	typ, id, _ := strings.Cut(path, "/")
	st := storeStep{entry: e, typ: typ}
	if e.Method != "POST" && e.Method != "PUT" {
		return st, refuse(http.StatusBadRequest, fhir.CodeNotSupported, at+".method", "the demo FHIR store takes POST and PUT entries")
	}
	if typ != e.Resource.Type() {
		return st, refuse(http.StatusBadRequest, fhir.CodeInvalid, at+".url", fmt.Sprintf("the url is for %q; the resource is a %s", typ, e.Resource.Type()))
	}
	body, err := fhir.JSON(e.Resource.Message())
	if err != nil {
		return st, refuse(http.StatusBadRequest, fhir.CodeStructure, fmt.Sprintf("Bundle.entry[%d].resource", i), "the resource could not be written as JSON")
	}
	st.body = body
	var cond string
	switch {
	case e.Method == "PUT" && id != "":
		st.id, st.cur = id, s.byType[typ][id]
		if e.IfMatch != "" && (st.cur == nil || strings.TrimPrefix(e.IfMatch, "W/") != strings.TrimPrefix(st.cur.etag(), "W/")) {
			return st, refuse(http.StatusPreconditionFailed, fhir.CodeConflict, at+".ifMatch", "ifMatch is not the current version")
		}
		return st, nil
	case e.Method == "PUT":
		cond = query
		if cond == "" {
			return st, refuse(http.StatusBadRequest, fhir.CodeNotSupported, at+".url", "a PUT needs Type/id or Type?identifier=system|value")
		}
	case e.IfNoneExist != "":
		cond = e.IfNoneExist
	}
	if cond != "" {
		found, serr := s.search(typ, cond, at)
		if serr != nil {
			return st, serr
		}
		if len(found) == 1 {
			st.id, st.cur = found[0].id, found[0]
			st.keep = e.Method == "POST" // If-None-Exist matched
			return st, nil
		}
	}
	s.seq++
	st.id = strconv.Itoa(s.seq)
	return st, nil
}

// search finds the resources of typ a condition (identifier=system|value,
// the one search the store takes) matches; two or more are 412, as a
// conditional operation must not pick one. s.mu is held.
func (s *fhirStore) search(typ, cond, at string) ([]*storedResource, *storeError) {
	tok, ok := strings.CutPrefix(cond, "identifier=")
	if !ok || strings.Contains(tok, "&") {
		return nil, refuse(http.StatusBadRequest, fhir.CodeNotSupported, at, "the demo FHIR store searches identifier=system|value only")
	}
	found := s.find(typ, parseToken(tok))
	if len(found) > 1 {
		return nil, refuse(http.StatusPreconditionFailed, fhir.CodeMultipleMatches, at,
			fmt.Sprintf("the condition matches %d %s resources", len(found), typ))
	}
	return found, nil
}

// find lists the resources of typ with an identifier matching want (all
// of them when want is empty), by id. s.mu is held.
func (s *fhirStore) find(typ string, want fhir.Identifier) []*storedResource {
	var out []*storedResource
	for _, r := range s.byType[typ] {
		if want.Value == "" || slices.ContainsFunc(r.ids, func(id fhir.Identifier) bool { return id.Matches(want) }) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *storedResource) int {
		x, _ := strconv.Atoi(a.id)
		y, _ := strconv.Atoi(b.id)
		return x - y
	})
	return out
}

// parseToken reads a search token from a URL query as written. With a
// raw '|' it is split there first and each part unescaped, so that a '|'
// percent-encoded inside the system or value (as careflow writes them)
// stays in it; without one, the separator itself was encoded (%7C, as
// curl and most clients write it).
func parseToken(raw string) fhir.Identifier {
	unescape := func(s string) string {
		if u, err := url.QueryUnescape(s); err == nil {
			return u
		}
		return s
	}
	if sys, val, ok := strings.Cut(raw, "|"); ok {
		return fhir.Identifier{System: unescape(sys), Value: unescape(val)}
	}
	return fhir.ParseToken(unescape(raw))
}

func (s *fhirStore) serveRead(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("type"), r.PathValue("id")
	s.mu.Lock()
	sr := s.byType[typ][id]
	s.mu.Unlock()
	if sr == nil {
		writeStoreError(w, refuse(http.StatusNotFound, fhir.CodeNotFound, "", "no "+typ+" with that id"))
		return
	}
	w.Header().Set("Content-Type", fhir.ContentType)
	w.Header().Set("ETag", sr.etag())
	w.Header().Set("Last-Modified", sr.updated.UTC().Format(http.TimeFormat))
	w.Write(sr.body)
}

// maxSearch bounds a searchset: the newest maxSearch matches.
const maxSearch = 100

func (s *fhirStore) serveSearch(w http.ResponseWriter, r *http.Request) {
	typ := r.PathValue("type")
	var want fhir.Identifier
	if v := r.URL.Query(); len(v) > 0 {
		if len(v) != 1 || len(v["identifier"]) != 1 {
			writeStoreError(w, refuse(http.StatusBadRequest, fhir.CodeNotSupported, "", "the demo FHIR store searches identifier=system|value only"))
			return
		}
		want = fhir.ParseToken(v.Get("identifier"))
	}
	s.mu.Lock()
	found := s.find(typ, want)
	entries := make([]map[string]any, 0, min(len(found), maxSearch))
	for _, sr := range found[max(0, len(found)-maxSearch):] {
		entries = append(entries, map[string]any{
			"fullUrl":  "http://" + r.Host + "/fhir/" + sr.typ + "/" + sr.id,
			"resource": json.RawMessage(sr.body),
			"search":   map[string]string{"mode": "match"},
		})
	}
	s.mu.Unlock()
	b, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(found), "entry": entries})
	if err != nil {
		writeStoreError(w, refuse(http.StatusInternalServerError, "exception", "", "the store could not write the searchset"))
		return
	}
	w.Header().Set("Content-Type", fhir.ContentType)
	w.Write(b)
}

func writeStoreError(w http.ResponseWriter, e *storeError) {
	w.Header().Set("Content-Type", fhir.ContentType)
	w.WriteHeader(e.status)
	w.Write(fhir.OperationOutcome(e.err))
}
