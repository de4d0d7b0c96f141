// This file serves the subset of the Confluent Schema Registry REST API
// that producers, consumers and tools use (kcat -r, Confluent and Karapace
// clients, franz-go's sr), so that careflow's admin port can stand in for a
// registry.

package registry

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

const contentType = "application/vnd.schemaregistry.v1+json"

// maxBody bounds a request body; careflow's largest schema is a few KiB.
const maxBody = 1 << 20

// Paths are the path patterns the Store answers, for mounting it at the
// root of a mux that also serves other things (metrics, health checks):
//
//	for _, p := range registry.Paths {
//		mux.Handle(p, store)
//	}
var Paths = []string{"/subjects", "/subjects/", "/schemas/", "/config", "/config/"}

// ServeHTTP serves the registry API. Mount it at the root of a listener
// (clients expect /subjects, /schemas, /config there) or under a prefix
// with http.StripPrefix.
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Store) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /subjects", s.getSubjects)
	m.HandleFunc("POST /subjects/{subject}", s.postLookup)
	m.HandleFunc("POST /subjects/{subject}/versions", s.postRegister)
	m.HandleFunc("GET /subjects/{subject}/versions", s.getVersions)
	m.HandleFunc("GET /subjects/{subject}/versions/{version}", s.getVersion)
	m.HandleFunc("GET /subjects/{subject}/versions/{version}/schema", s.getVersionSchema)
	m.HandleFunc("GET /schemas/ids/{id}", s.getSchema)
	m.HandleFunc("GET /schemas/ids/{id}/schema", s.getSchemaText)
	m.HandleFunc("GET /schemas/ids/{id}/versions", s.getUsages)
	m.HandleFunc("GET /schemas/ids/{id}/subjects", s.getUsageSubjects)
	m.HandleFunc("GET /schemas/types", func(w http.ResponseWriter, _ *http.Request) { reply(w, []string{"AVRO"}) })
	m.HandleFunc("GET /config", getConfig)
	m.HandleFunc("GET /config/{subject}", getConfig)
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { reply(w, struct{}{}) })
	return m
}

// schemaRequest is the body of register and lookup.
type schemaRequest struct {
	Schema     string `json:"schema"`
	SchemaType string `json:"schemaType"`
	References []any  `json:"references"`
}

func readSchema(w http.ResponseWriter, r *http.Request) (string, bool) {
	var req schemaRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	switch {
	case err != nil:
		replyError(w, &Error{CodeInvalidSchema, fmt.Sprintf("request body is not a schema object: %v", err)})
	case req.SchemaType != "" && req.SchemaType != "AVRO":
		replyError(w, &Error{CodeInvalidSchema, fmt.Sprintf("schema type %s is not supported; this registry holds AVRO only", req.SchemaType)})
	case len(req.References) > 0:
		replyError(w, &Error{CodeInvalidSchema, "schema references are not supported"})
	default:
		return req.Schema, true
	}
	return "", false
}

func (s *Store) postRegister(w http.ResponseWriter, r *http.Request) {
	schema, ok := readSchema(w, r)
	if !ok {
		return
	}
	subject := r.PathValue("subject")
	asked := false
	var allow func() error
	if s.writes.Authorize != nil {
		allow = func() error { asked = true; return s.writes.Authorize(r, subject) }
	}
	id, version, err := s.register(subject, schema, allow)
	if asked && s.writes.Done != nil {
		s.writes.Done(r, subject, id, version, err)
	}
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, map[string]int{"id": id})
}

func (s *Store) postLookup(w http.ResponseWriter, r *http.Request) {
	schema, ok := readSchema(w, r)
	if !ok {
		return
	}
	subject := r.PathValue("subject")
	id, version, err := s.lookup(subject, schema)
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, subjectSchema{Subject: subject, Version: version, ID: id, Schema: schema})
}

// subjectSchema is Confluent's answer for one subject version.
type subjectSchema struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
}

func (s *Store) getSubjects(w http.ResponseWriter, _ *http.Request) { reply(w, s.subjects()) }

func (s *Store) getVersions(w http.ResponseWriter, r *http.Request) {
	v, err := s.versions(r.PathValue("subject"))
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, v)
}

// subjectVersion resolves the {subject}/{version} path values; the version
// is a number or "latest".
func (s *Store) subjectVersion(r *http.Request) (subjectSchema, error) {
	subject, raw := r.PathValue("subject"), r.PathValue("version")
	v := -1
	if raw != "latest" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 && n != -1 {
			return subjectSchema{}, &Error{CodeInvalidVersion, fmt.Sprintf("version %q is not a positive number or \"latest\"", raw)}
		}
		v = n
	}
	id, version, schema, err := s.version(subject, v)
	return subjectSchema{Subject: subject, Version: version, ID: id, Schema: schema}, err
}

func (s *Store) getVersion(w http.ResponseWriter, r *http.Request) {
	ss, err := s.subjectVersion(r)
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, ss)
}

func (s *Store) getVersionSchema(w http.ResponseWriter, r *http.Request) {
	ss, err := s.subjectVersion(r)
	if err != nil {
		replyError(w, err)
		return
	}
	replyRaw(w, ss.Schema)
}

// schemaID resolves the {id} path value and the schema it names.
func (s *Store) schemaID(r *http.Request) (int, string, error) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		return 0, "", &Error{CodeSchemaNotFound, fmt.Sprintf("schema id %q is not a number", r.PathValue("id"))}
	}
	text, err := s.SchemaByID(r.Context(), id)
	return id, text, err
}

func (s *Store) getSchema(w http.ResponseWriter, r *http.Request) {
	_, text, err := s.schemaID(r)
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, map[string]string{"schema": text})
}

func (s *Store) getSchemaText(w http.ResponseWriter, r *http.Request) {
	_, text, err := s.schemaID(r)
	if err != nil {
		replyError(w, err)
		return
	}
	replyRaw(w, text)
}

func (s *Store) getUsages(w http.ResponseWriter, r *http.Request) {
	id, _, err := s.schemaID(r)
	if err != nil {
		replyError(w, err)
		return
	}
	u, err := s.usages(id)
	if err != nil {
		replyError(w, err)
		return
	}
	reply(w, u)
}

func (s *Store) getUsageSubjects(w http.ResponseWriter, r *http.Request) {
	id, _, err := s.schemaID(r)
	if err != nil {
		replyError(w, err)
		return
	}
	u, err := s.usages(id)
	if err != nil {
		replyError(w, err)
		return
	}
	subjects := make([]string, 0, len(u))
	for _, sv := range u {
		if len(subjects) == 0 || subjects[len(subjects)-1] != sv.Subject {
			subjects = append(subjects, sv.Subject)
		}
	}
	reply(w, subjects)
}

// getConfig answers for the registry and for every subject alike: the
// Store enforces BACKWARD everywhere and cannot be reconfigured.
func getConfig(w http.ResponseWriter, _ *http.Request) {
	reply(w, map[string]string{"compatibilityLevel": "BACKWARD"})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", contentType)
	json.NewEncoder(w).Encode(v)
}

func replyRaw(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", contentType)
	io.WriteString(w, text)
}

func replyError(w http.ResponseWriter, err error) {
	e, ok := err.(*Error)
	if !ok {
		e = &Error{50001, err.Error()}
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(e.status())
	json.NewEncoder(w).Encode(e)
}
