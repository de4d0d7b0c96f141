// This file is the one table between v2 assigning authorities (CX.4,
// EI.2) and FHIR identifier systems, used both ways: writing a canonical
// identifier as a FHIR Identifier, and reading a FHIR Identifier into a
// canonical one, so that one person's identifier keys them the same way
// whichever standard it came in.

package fhir

import "strings"

// placeholderPrefix names an authority no URI is configured for. It is a
// URN, so a FHIR server accepts it as a system and conditional searches on
// it are exact; docs/fhir.md tells an estate to configure the real URI.
const placeholderPrefix = "urn:careflow:authority:"

// defaultSystems are the systems every estate shares.
var defaultSystems = map[string]string{
	"NHS": "https://fhir.nhs.uk/Id/nhs-number",
	"CHI": "https://fhir.nhs.uk/Id/chi-number",
}

// Systems maps assigning authorities to FHIR identifier system URIs and
// back. The zero value knows only the defaults.
type Systems struct {
	uri       map[string]string // upper-cased authority → URI
	authority map[string]string // URI → authority as configured
}

// NewSystems returns the defaults plus extra (authority → URI), which
// wins over a default of the same authority.
func NewSystems(extra map[string]string) *Systems {
	s := &Systems{uri: map[string]string{}, authority: map[string]string{}}
	for a, u := range defaultSystems {
		s.add(a, u)
	}
	for a, u := range extra {
		s.add(a, u)
	}
	return s
}

func (s *Systems) add(authority, uri string) {
	s.uri[strings.ToUpper(authority)] = uri
	s.authority[uri] = authority
}

func (s *Systems) tables() *Systems {
	if s == nil || s.uri == nil {
		return NewSystems(nil)
	}
	return s
}

// URI is authority's configured system, and whether there is one.
func (s *Systems) URI(authority string) (string, bool) {
	u, ok := s.tables().uri[strings.ToUpper(authority)]
	return u, ok
}

// SearchURI is the system an identifier of authority is written and
// searched under: the configured one, else a careflow placeholder URN
// (urn:careflow:authority:HOSP). "" for no authority.
func (s *Systems) SearchURI(authority string) string {
	if authority == "" {
		return ""
	}
	if u, ok := s.URI(authority); ok {
		return u
	}
	return placeholderPrefix + strings.ToUpper(authority)
}

// Authority is the assigning authority of a FHIR Identifier's system: the
// configured authority, the one a placeholder URN names, the OID of a
// urn:oid: system, else the URI itself, so that two systems never share
// an authority.
func (s *Systems) Authority(uri string) string {
	if a, ok := s.tables().authority[uri]; ok {
		return a
	}
	if a, ok := strings.CutPrefix(uri, placeholderPrefix); ok {
		return a
	}
	if oid, ok := strings.CutPrefix(uri, "urn:oid:"); ok {
		return oid
	}
	return uri
}

// AuthorityOf is the assigning authority of a FHIR identifier: its
// system's (Authority), else its assigner's display, as v2-to-FHIR writes
// an authority with no system. Both the API's patient key and Canonical
// read identifiers by it, so one person keys alike on both paths.
func (s *Systems) AuthorityOf(system, assigner string) string {
	if system != "" {
		return s.Authority(system)
	}
	return assigner
}
