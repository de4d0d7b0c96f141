// Package registry holds schema registries for careflow's Avro serde: Store,
// a small file-backed registry that also serves the Confluent Schema
// Registry REST API (so kcat, Confluent and franz-go clients can fetch
// careflow's schemas from the admin port), and Remote, a client of a real
// registry (Confluent, Karapace, Redpanda).
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/linkedin/goavro/v2"
)

// Confluent Schema Registry error codes the Store answers with.
const (
	CodeSubjectNotFound = 40401
	CodeVersionNotFound = 40402
	CodeSchemaNotFound  = 40403
	CodeIncompatible    = 409
	CodeInvalidSchema   = 42201
	CodeInvalidVersion  = 42202
)

// Error is a registry error with Confluent's error code.
type Error struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("schema registry: %s (error code %d)", e.Message, e.Code)
}

// status is the HTTP status Confluent sends with e: the first three digits
// of a five-digit code.
func (e *Error) status() int {
	if e.Code >= 10000 {
		return e.Code / 100
	}
	return e.Code
}

// fileName is the Store's file inside its directory.
const fileName = "schemas.json"

// state is what the Store persists. A schema's version in a subject is its
// index in Subjects[subject] plus one.
type state struct {
	Schemas  []string         `json:"schemas"`  // schema id i+1 is Schemas[i]
	Subjects map[string][]int `json:"subjects"` // subject → schema ids by version
}

// Store is an in-memory schema registry persisted to one JSON file. Ids are
// global (the same schema under two subjects has one id) and stable across
// restarts. Every subject's compatibility level is BACKWARD. It is safe for
// concurrent use, and serves HTTP (see ServeHTTP).
type Store struct {
	path   string
	writes HTTPWrites
	rule   func(subject, schema string) error

	mu      sync.Mutex
	st      state
	compact map[string]int // whitespace-free schema text → id
	mux     *http.ServeMux
}

// HTTPWrites governs registrations made over the REST API (Register, the
// in-process call careflow's own serde makes, is not asked).
type HTTPWrites struct {
	// Authorize is asked before a registration that would change the
	// Store: a new subject, version or schema. Registering what a subject
	// already has is a read and is not asked. A *Error it returns is
	// answered as is (401, 403); nil Authorize allows every change.
	Authorize func(r *http.Request, subject string) error
	// Done, when set, is told of every change tried over HTTP that
	// Authorize was asked about: the id and version made, or why not.
	Done func(r *http.Request, subject string, id, version int, err error)
}

// Option configures a Store.
type Option func(*Store)

// WithHTTPWrites sets who may change the Store over HTTP. Default: anyone.
func WithHTTPWrites(w HTTPWrites) Option { return func(s *Store) { s.writes = w } }

// WithSchemaRule adds a check every new version must pass, however it is
// registered, besides parsing and BACKWARD compatibility; its error is
// answered as an incompatible schema (409).
func WithSchemaRule(rule func(subject, schema string) error) Option {
	return func(s *Store) { s.rule = rule }
}

// Confluent's codes for a refused request.
const (
	CodeUnauthorized = 40101
	CodeForbidden    = 40301
)

// Open loads the Store kept in dir, creating dir and an empty Store when
// there is none.
func Open(dir string, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("schema registry: create directory %s: %w", dir, err)
	}
	s := &Store{path: filepath.Join(dir, fileName), st: state{Subjects: map[string][]int{}}, compact: map[string]int{}}
	for _, o := range opts {
		o(s)
	}
	s.mux = s.routes()
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schema registry: read %s: %w", s.path, err)
	}
	if err := json.Unmarshal(b, &s.st); err != nil {
		return nil, fmt.Errorf("schema registry: parse %s: %w", s.path, err)
	}
	if s.st.Subjects == nil {
		s.st.Subjects = map[string][]int{}
	}
	for i, text := range s.st.Schemas {
		s.compact[compactJSON(text)] = i + 1
	}
	for subject, ids := range s.st.Subjects {
		for _, id := range ids {
			if id < 1 || id > len(s.st.Schemas) {
				return nil, fmt.Errorf("schema registry: %s: subject %q refers to schema id %d, which the file lacks", s.path, subject, id)
			}
		}
	}
	return s, nil
}

// Register adds schema to subject and returns its id; registering a schema
// the subject already has returns the existing id. A new version must parse
// as Avro and be BACKWARD compatible with the subject's latest version.
func (s *Store) Register(_ context.Context, subject, schema string) (int, error) {
	id, _, err := s.register(subject, schema, nil)
	return id, err
}

// SchemaByID returns the text of the schema with id.
func (s *Store) SchemaByID(_ context.Context, id int) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || id > len(s.st.Schemas) {
		return "", &Error{CodeSchemaNotFound, fmt.Sprintf("schema id %d not found", id)}
	}
	return s.st.Schemas[id-1], nil
}

// register adds schema to subject. allow, when not nil, is asked once it
// is known that the registration would change the Store.
func (s *Store) register(subject, schema string, allow func() error) (id, version int, err error) {
	if subject == "" {
		return 0, 0, &Error{CodeInvalidSchema, "empty subject"}
	}
	if _, err := goavro.NewCodec(schema); err != nil {
		return 0, 0, &Error{CodeInvalidSchema, fmt.Sprintf("invalid Avro schema for subject %s: %v", subject, err)}
	}
	key := compactJSON(schema)

	s.mu.Lock()
	defer s.mu.Unlock()
	id, known := s.compact[key]
	versions := s.st.Subjects[subject]
	if known {
		if i := slices.Index(versions, id); i >= 0 {
			return id, i + 1, nil
		}
	}
	if allow != nil {
		if err := allow(); err != nil {
			return 0, 0, err
		}
	}
	if n := len(versions); n > 0 {
		if err := checkBackward(schema, s.st.Schemas[versions[n-1]-1]); err != nil {
			return 0, 0, &Error{CodeIncompatible, fmt.Sprintf("schema for subject %s is incompatible with version %d (BACKWARD): %v", subject, n, err)}
		}
	}
	if s.rule != nil {
		if err := s.rule(subject, schema); err != nil {
			return 0, 0, &Error{CodeIncompatible, fmt.Sprintf("schema for subject %s refused: %v", subject, err)}
		}
	}
	next := s.st
	next.Subjects = make(map[string][]int, len(s.st.Subjects)+1)
	for k, v := range s.st.Subjects {
		next.Subjects[k] = v
	}
	if !known {
		next.Schemas = append(slices.Clip(s.st.Schemas), schema)
		id = len(next.Schemas)
	}
	next.Subjects[subject] = append(slices.Clip(versions), id)
	if err := s.save(next); err != nil {
		return 0, 0, err
	}
	s.st = next
	s.compact[key] = id
	return id, len(next.Subjects[subject]), nil
}

// save writes st to a temporary file and renames it over the Store's file,
// so that a crash leaves either the old file or the new one, never half.
func (s *Store) save(st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("schema registry: encode state: %w", err)
	}
	dir := filepath.Dir(s.path)
	f, err := os.CreateTemp(dir, fileName+".*.tmp")
	if err != nil {
		return fmt.Errorf("schema registry: create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("schema registry: write %s: %w", s.path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}

// lookup finds schema in subject.
func (s *Store) lookup(subject, schema string) (id, version int, err error) {
	key := compactJSON(schema)
	s.mu.Lock()
	defer s.mu.Unlock()
	versions, ok := s.st.Subjects[subject]
	if !ok {
		return 0, 0, subjectNotFound(subject)
	}
	if id, ok := s.compact[key]; ok {
		if i := slices.Index(versions, id); i >= 0 {
			return id, i + 1, nil
		}
	}
	return 0, 0, &Error{CodeSchemaNotFound, fmt.Sprintf("schema not found in subject %s", subject)}
}

// version returns the id and text of subject's version v; v == -1 is the
// latest.
func (s *Store) version(subject string, v int) (id, version int, schema string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	versions, ok := s.st.Subjects[subject]
	if !ok {
		return 0, 0, "", subjectNotFound(subject)
	}
	if v == -1 {
		v = len(versions)
	}
	if v < 1 || v > len(versions) {
		return 0, 0, "", &Error{CodeVersionNotFound, fmt.Sprintf("version %d of subject %s not found", v, subject)}
	}
	id = versions[v-1]
	return id, v, s.st.Schemas[id-1], nil
}

func (s *Store) subjects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.st.Subjects))
	for k := range s.st.Subjects {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// versions lists subject's versions, 1..n.
func (s *Store) versions(subject string) ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, ok := s.st.Subjects[subject]
	if !ok {
		return nil, subjectNotFound(subject)
	}
	out := make([]int, len(ids))
	for i := range out {
		out[i] = i + 1
	}
	return out, nil
}

// subjectVersion is one use of a schema id.
type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// usages lists the subject versions that use schema id.
func (s *Store) usages(id int) ([]subjectVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || id > len(s.st.Schemas) {
		return nil, &Error{CodeSchemaNotFound, fmt.Sprintf("schema id %d not found", id)}
	}
	var out []subjectVersion
	for subject, ids := range s.st.Subjects {
		for i, v := range ids {
			if v == id {
				out = append(out, subjectVersion{subject, i + 1})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subject != out[j].Subject {
			return out[i].Subject < out[j].Subject
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

func subjectNotFound(subject string) *Error {
	return &Error{CodeSubjectNotFound, fmt.Sprintf("subject %s not found", subject)}
}

// compactJSON is the identity of a schema: its text without insignificant
// whitespace. Unlike Avro's canonical form it keeps defaults and docs,
// which matter to readers.
func compactJSON(text string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(text)); err != nil {
		return text
	}
	return b.String()
}
