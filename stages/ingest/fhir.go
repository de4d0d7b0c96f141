// This file serves careflow's FHIR R4 REST interfaces: each fhir
// interface is a FHIR base at /fhir/{interface}/ on the HTTP listener,
// taking create, update (with If-Match), conditional create and update,
// read, and transaction and batch Bundles (fhirbundle.go). A write is
// answered only once Kafka holds it: its raw record (what the client sent,
// on careflow.raw, like an HL7 v2 message) and the resource's new version
// (careflow.fhir, fhirstore.go). Everything a client gets wrong is a 4xx
// with an OperationOutcome naming the element, and nothing is stored.

package ingest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/stages/audit"
)

// FHIRVersion is the FHIR release careflow's interfaces speak.
const FHIRVersion = "4.0.1"

// fhirError is a request careflow refuses: its HTTP status and the
// OperationOutcome issues that say why.
type fhirError struct {
	status int
	err    error // a *fhir.Issues, or any error (its text becomes the diagnostics)
}

func (e *fhirError) Error() string { return e.err.Error() }

func refuseFHIR(status int, code fhir.IssueCode, expression, diagnostics string) *fhirError {
	return &fhirError{status: status, err: fhir.NewIssue(code, expression, diagnostics)}
}

// interaction is one write: a create or an update of one resource.
type interaction struct {
	typ         string
	id          string // the URL's id (update); "" for a create
	method      string // "create" or "update"
	body        []byte // the resource as the client sent it
	res         fhir.Resource
	ifNoneExist string // conditional create: identifier=system|value
	conditional string // conditional update: identifier=system|value
	ifMatch     string // W/"3"
	fullURL     string // a Bundle entry's fullUrl
}

// plan is what a write will store, decided under the resource's lock.
type plan struct {
	stored   *storedResource
	created  bool // a new resource (201), else a new version (200)
	existing bool // a conditional create that matched: nothing is written (200)
}

func (s *Stage) fhirRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /fhir/{interface}/metadata", s.serveCapability)
	mux.HandleFunc("POST /fhir/{interface}", s.serveBundle)
	mux.HandleFunc("POST /fhir/{interface}/{$}", s.serveBundle)
	mux.HandleFunc("POST /fhir/{interface}/{type}", s.serveCreate)
	mux.HandleFunc("PUT /fhir/{interface}/{type}", s.serveUpdate)
	mux.HandleFunc("PUT /fhir/{interface}/{type}/{id}", s.serveUpdate)
	mux.HandleFunc("GET /fhir/{interface}/{type}/{id}", s.serveRead)
}

// fhirInterface is the request's interface, when it is a FHIR one.
func (s *Stage) fhirInterface(w http.ResponseWriter, r *http.Request) (*Interface, bool) {
	in, ok := s.ifaces[r.PathValue("interface")]
	if !ok || !in.FHIR {
		writeOutcome(w, refuseFHIR(http.StatusNotFound, fhir.CodeNotFound, "", "no FHIR interface "+strconv.Quote(r.PathValue("interface"))))
		return nil, false
	}
	return in, true
}

// baseURL is the interface's FHIR base as the client reached it.
func baseURL(r *http.Request, in *Interface) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir/" + in.Name
}

func (s *Stage) serveCapability(w http.ResponseWriter, r *http.Request) {
	in, ok := s.fhirInterface(w, r)
	if !ok {
		return
	}
	b, err := fhir.CapabilityStatement(fhir.Capability{Interface: in.Name, BaseURL: baseURL(r, in), Resources: in.FHIRResources,
		Software: s.cfg.Version, Date: s.started, SMART: in.Writers.JWT != nil})
	if err != nil {
		writeOutcome(w, &fhirError{status: http.StatusInternalServerError, err: err})
		return
	}
	writeFHIR(w, http.StatusOK, b)
}

// authorise finds the request's FHIR interface and checks the writer,
// before a byte of the body is read, and returns who it is.
func (s *Stage) authorise(w http.ResponseWriter, r *http.Request) (receipt, bool) {
	in, ok := s.fhirInterface(w, r)
	if !ok {
		return receipt{}, false
	}
	peer := peerOf(r.RemoteAddr, r.TLS)
	rc := receipt{in: in, transport: avro.TransportFHIR, writer: peer, start: time.Now()}
	ref := in.Writers.checkAddress(in.Name, peer.Address)
	if ref == nil {
		rc.writer, ref = in.Writers.authenticate(r, in.Name, peer)
	}
	if ref == nil {
		return rc, true
	}
	code := fhir.CodeForbidden
	if ref.status == http.StatusUnauthorized {
		code = fhir.CodeLogin
		w.Header().Set("WWW-Authenticate", `Bearer realm="careflow", error="invalid_token"`)
	} else if rc.writer.Kind == audit.AgentJWT {
		w.Header().Set("WWW-Authenticate", `Bearer realm="careflow", error="insufficient_scope", scope="`+in.Writers.Scope+`"`)
	}
	s.refuseWriter(rc, ref)
	writeOutcome(w, refuseFHIR(ref.status, code, "", "not authorised: "+ref.reason))
	return rc, false
}

// refuseWriter counts, audits and (once a minute per writer and reason)
// logs a writer refused; nothing of what it sent is stored.
func (s *Stage) refuseWriter(rc receipt, ref *refusal) {
	s.metrics.messages.WithLabelValues(rc.in.Name, resultRefused).Inc()
	if s.cfg.Audit.Refused(audit.Refusal{
		Type: audit.TypeWriterRefused, AgentType: rc.writer.Kind, AgentWho: rc.writer.Who, AgentNetwork: rc.writer.Address,
		EntityType: audit.EntityInterface, EntityWhat: rc.in.Name, EntityDetail: rc.transport, Reason: ref.reason,
	}) {
		s.log.Warn("ingest refused a writer; nothing stored", "interface", rc.in.Name, "transport", rc.transport,
			"writer", rc.writer.String(), "reason", ref.reason)
	}
}

// allowed checks the writer may make interaction on typ: the interface
// takes the type, and a JWT writer holds a SMART scope for it.
func (s *Stage) allowed(rc receipt, typ, method string) *fhirError {
	if !slices.Contains(rc.in.FHIRResources, typ) {
		return refuseFHIR(http.StatusNotFound, fhir.CodeNotSupported, "",
			fmt.Sprintf("interface %s does not take %s resources; it takes %s", rc.in.Name, typ, strings.Join(rc.in.FHIRResources, ", ")))
	}
	if rc.writer.Kind == audit.AgentJWT && !fhir.ScopeAllows(rc.writer.Scopes, typ, method) {
		ref := &refusal{reason: "bearer JWT does not grant " + fhir.Scope(typ, method) + " (or a SMART 2 ." + method[:1] + " scope)", status: http.StatusForbidden}
		s.refuseWriter(rc, ref)
		return refuseFHIR(http.StatusForbidden, fhir.CodeForbidden, "", "not authorised: "+ref.reason)
	}
	return nil
}

// readBody reads the request body within the interface's limit.
func readBody(w http.ResponseWriter, r *http.Request, in *Interface) ([]byte, *fhirError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(in.MaxMessageSize)))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, refuseFHIR(http.StatusRequestEntityTooLarge, fhir.CodeTooCostly, "",
			fmt.Sprintf("the body exceeds interface %s's limit of %d bytes", in.Name, in.MaxMessageSize))
	case err != nil:
		return nil, refuseFHIR(http.StatusBadRequest, fhir.CodeStructure, "", "the body could not be read")
	}
	return body, nil
}

// decode reads and validates one resource of the URL's type.
func decode(body []byte, typ string) (fhir.Resource, *fhirError) {
	res, err := fhir.Decode(body)
	if err != nil {
		status := http.StatusBadRequest
		var is *fhir.Issues
		if errors.As(err, &is) {
			status = is.Status()
		}
		return res, &fhirError{status: status, err: err}
	}
	if typ != "" && res.Type() != typ {
		return res, refuseFHIR(http.StatusBadRequest, fhir.CodeInvalid, res.Type(),
			fmt.Sprintf("the body is a %s; the URL is for %s", res.Type(), typ))
	}
	return res, nil
}

func (s *Stage) serveCreate(w http.ResponseWriter, r *http.Request) {
	s.serveWrite(w, r, "create")
}

func (s *Stage) serveUpdate(w http.ResponseWriter, r *http.Request) {
	s.serveWrite(w, r, "update")
}

func (s *Stage) serveWrite(w http.ResponseWriter, r *http.Request, method string) {
	rc, ok := s.authorise(w, r)
	if !ok {
		return
	}
	in := rc.in
	typ := r.PathValue("type")
	if fe := s.allowed(rc, typ, method); fe != nil {
		writeOutcome(w, fe)
		return
	}
	body, fe := readBody(w, r, in)
	if fe != nil {
		s.rejected(in, fe)
		writeOutcome(w, fe)
		return
	}
	it := interaction{typ: typ, id: r.PathValue("id"), method: method, body: body,
		ifNoneExist: r.Header.Get("If-None-Exist"), ifMatch: r.Header.Get("If-Match")}
	if method == "update" && it.id == "" {
		it.conditional = r.URL.RawQuery
	}
	if it.res, fe = decode(body, typ); fe == nil {
		fe = checkID(it)
	}
	if fe != nil {
		s.rejected(in, fe)
		writeOutcome(w, fe)
		return
	}
	st, fe := s.write(r.Context(), rc, []interaction{it}, nil)
	if fe != nil {
		s.rejected(in, fe)
		writeOutcome(w, fe)
		return
	}
	p := st[0]
	status := http.StatusOK
	if p.created {
		status = http.StatusCreated
	}
	if p.existing && rc.writer.Kind == audit.AgentJWT && !fhir.ScopeAllows(rc.writer.Scopes, typ, "read") {
		// A conditional create that matched answers with the resource
		// already there: its location, not its content, to a writer that
		// may not read it.
		r.Header.Set("Prefer", "return=minimal")
	}
	s.answerResource(w, r, in, status, p.stored)
}

// checkID applies R4's rules for the id in an update's body.
func checkID(it interaction) *fhirError {
	id := it.res.ID()
	switch {
	case it.method == "update" && it.id != "" && id == "":
		return refuseFHIR(http.StatusBadRequest, fhir.CodeRequired, it.typ+".id", "an update's body needs the id of its URL ("+it.id+")")
	case it.method == "update" && it.id != "" && id != it.id:
		return refuseFHIR(http.StatusBadRequest, fhir.CodeInvalid, it.typ+".id", "the body's id "+strconv.Quote(id)+" is not the URL's "+strconv.Quote(it.id))
	case it.method == "update" && it.id == "" && !strings.HasPrefix(it.conditional, "identifier="):
		return refuseFHIR(http.StatusBadRequest, fhir.CodeNotSupported, "", "a conditional update needs ?identifier=system|value (the only search careflow takes)")
	}
	return nil
}

// rejected counts and logs a write refused for its content; nothing of
// it is stored, and the log line names no value from it.
func (s *Stage) rejected(in *Interface, fe *fhirError) {
	s.metrics.messages.WithLabelValues(in.Name, resultRejected).Inc()
	var is *fhir.Issues
	expr := ""
	if errors.As(fe.err, &is) && len(is.Issues) > 0 {
		expr = is.Issues[0].Expression
	}
	s.log.Info("ingest refused a FHIR write; nothing stored", "interface", in.Name, "status", fe.status, "expression", expr)
}

func (s *Stage) serveRead(w http.ResponseWriter, r *http.Request) {
	rc, ok := s.authorise(w, r)
	if !ok {
		return
	}
	in := rc.in
	// A read discloses a patient's record: a JWT writer needs a read
	// scope for the type, as it needs a write scope to write it.
	if fe := s.allowed(rc, r.PathValue("type"), "read"); fe != nil {
		writeOutcome(w, fe)
		return
	}
	st := s.fhir.get(in.Name, r.PathValue("type"), r.PathValue("id"))
	if st == nil {
		writeOutcome(w, refuseFHIR(http.StatusNotFound, fhir.CodeNotFound, "", r.PathValue("type")+"/"+r.PathValue("id")+" is not on interface "+in.Name))
		return
	}
	s.answerResource(w, r, in, http.StatusOK, st)
}

func (s *Stage) answerResource(w http.ResponseWriter, r *http.Request, in *Interface, status int, st *storedResource) {
	w.Header().Set("Location", baseURL(r, in)+"/"+location(st))
	w.Header().Set("ETag", st.ETag())
	w.Header().Set("Last-Modified", st.LastUpdated.UTC().Format(http.TimeFormat))
	if strings.Contains(r.Header.Get("Prefer"), "return=minimal") {
		w.WriteHeader(status)
		return
	}
	writeFHIR(w, status, st.Resource)
}

func location(st *storedResource) string {
	return st.Type + "/" + st.ID + "/_history/" + strconv.Itoa(st.Version)
}

func writeFHIR(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", fhir.ContentType+"; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeOutcome(w http.ResponseWriter, fe *fhirError) {
	writeFHIR(w, fe.status, fhir.OperationOutcome(fe.err))
}
