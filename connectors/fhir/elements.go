// This file reads and sets the few elements careflow's FHIR API needs of
// a resource it already decoded and validated (Decode): its identifiers,
// the references it makes, and the id and meta a server assigns. They
// work on the JSON, so a resource is stored as its client wrote it, with
// only those elements changed.

package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Identifier is a FHIR Identifier's system, value and v2-0203 type code,
// and its assigner's display (how v2-to-FHIR writes an authority with no
// known system).
type Identifier struct {
	System, Value, Type string
	Assigner            string `json:",omitempty"`
	anySystem           bool   // a search token without "|": any system
}

// Token is the identifier as a search token: "system|value", with "|"
// and "\\" in either part escaped; "value" alone for a token of any
// system.
func (id Identifier) Token() string {
	esc := strings.NewReplacer(`\`, `\\`, `|`, `\|`, `,`, `\,`, `$`, `\$`)
	if id.anySystem {
		return esc.Replace(id.Value)
	}
	return esc.Replace(id.System) + "|" + esc.Replace(id.Value)
}

// ParseToken reads a search token as FHIR writes one (R4 3.1.1.5.6,
// 3.1.1.5.3): "system|value", "|value" (an identifier without a system),
// or "value" (any system), split at the first "|" not escaped as "\|",
// with the escapes \| \, \$ \\ undone in each part.
func ParseToken(tok string) Identifier {
	var parts [2]strings.Builder
	part, split := 0, false
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '\\' && i+1 < len(tok) && strings.IndexByte(`|,$\\`, tok[i+1]) >= 0:
			i++
			parts[part].WriteByte(tok[i])
		case c == '|' && part == 0:
			part, split = 1, true
		default:
			parts[part].WriteByte(c)
		}
	}
	if !split {
		return Identifier{Value: parts[0].String(), anySystem: true}
	}
	return Identifier{System: parts[0].String(), Value: parts[1].String()}
}

// Matches reports whether id satisfies the search token want: the same
// value, and the same system, none for "|value", any for "value".
func (id Identifier) Matches(want Identifier) bool {
	return id.Value == want.Value && (want.anySystem || id.System == want.System)
}

type jsonIdentifier struct {
	System   string `json:"system"`
	Value    string `json:"value"`
	Assigner struct {
		Display string `json:"display"`
	} `json:"assigner"`
	Type struct {
		Coding []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"coding"`
	} `json:"type"`
}

func (j jsonIdentifier) identifier() Identifier {
	id := Identifier{System: j.System, Value: j.Value, Assigner: j.Assigner.Display}
	for _, c := range j.Type.Coding {
		if c.System == v2IdentifierTypes {
			id.Type = c.Code
		}
	}
	return id
}

// Identifiers are a resource's own business identifiers (its top-level
// identifier elements).
func Identifiers(resource []byte) []Identifier {
	var r struct {
		Identifier json.RawMessage `json:"identifier"`
	}
	if json.Unmarshal(resource, &r) != nil || len(r.Identifier) == 0 {
		return nil
	}
	var list []jsonIdentifier
	if r.Identifier[0] == '{' { // a 0..1 identifier (Bundle's)
		var one jsonIdentifier
		if json.Unmarshal(r.Identifier, &one) != nil {
			return nil
		}
		list = []jsonIdentifier{one}
	} else if json.Unmarshal(r.Identifier, &list) != nil {
		return nil
	}
	out := make([]Identifier, 0, len(list))
	for _, j := range list {
		if j.Value != "" {
			out = append(out, j.identifier())
		}
	}
	return out
}

// Reference is one Reference element of a resource: where it is (a
// FHIRPath such as Observation.subject) and what it names, a literal
// reference ("Patient/123", "urn:uuid:...") and/or a logical identifier.
type Reference struct {
	Path       string
	Reference  string
	Identifier *Identifier
}

// References lists every Reference element of resource, in document
// order, outside contained resources (whose references are their own).
func References(resource []byte) []Reference {
	doc, err := document(resource)
	if err != nil {
		return nil
	}
	rt, _ := doc["resourceType"].(string)
	var out []Reference
	walkReferences(doc, rt, &out)
	return out
}

func walkReferences(v any, path string, out *[]Reference) {
	switch x := v.(type) {
	case map[string]any:
		ref, hasRef := x["reference"].(string)
		ident, hasIdent := x["identifier"].(map[string]any)
		if (hasRef || hasIdent) && isReference(x) {
			r := Reference{Path: path, Reference: ref}
			if hasIdent {
				b, _ := json.Marshal(ident)
				var j jsonIdentifier
				if json.Unmarshal(b, &j) == nil && j.Value != "" {
					id := j.identifier()
					r.Identifier = &id
				}
			}
			if r.Reference != "" || r.Identifier != nil {
				*out = append(*out, r)
				return
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			if k != "contained" && !strings.HasPrefix(k, "_") {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			walkReferences(x[k], path+"."+k, out)
		}
	case []any:
		for i, e := range x {
			walkReferences(e, path+"["+strconv.Itoa(i)+"]", out)
		}
	}
}

// isReference reports whether an element has only a Reference's keys.
func isReference(x map[string]any) bool {
	for k := range x {
		switch k {
		case "reference", "type", "identifier", "display", "id", "extension":
		default:
			return false
		}
	}
	return true
}

// RewriteReferences replaces each literal reference of resource found in
// to (a Bundle's urn:uuid fullUrls, say) with its value.
func RewriteReferences(resource []byte, to map[string]string) ([]byte, error) {
	if len(to) == 0 {
		return resource, nil
	}
	doc, err := document(resource)
	if err != nil {
		return nil, fmt.Errorf("fhir: rewrite references: %w", err)
	}
	rewrite(doc, to)
	return marshal(doc)
}

func rewrite(v any, to map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "reference" {
				if n, ok := to[s]; ok {
					x[k] = n
				}
				continue
			}
			if k != "contained" {
				rewrite(e, to)
			}
		}
	case []any:
		for _, e := range x {
			rewrite(e, to)
		}
	}
}

// SetMeta gives resource the id, meta.versionId and meta.lastUpdated a
// server assigns on a create or update.
func SetMeta(resource []byte, id string, version int, updated time.Time) ([]byte, error) {
	doc, err := document(resource)
	if err != nil {
		return nil, fmt.Errorf("fhir: set meta: %w", err)
	}
	doc["id"] = id
	meta, _ := doc["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["versionId"] = strconv.Itoa(version)
	meta["lastUpdated"] = updated.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	doc["meta"] = meta
	return marshal(doc)
}

// document reads a resource's JSON keeping its numbers as written: FHIR
// decimals carry their precision (5.10 is not 5.1).
func document(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// marshal writes doc with resourceType first, as FHIR JSON is written by
// convention, and without HTML escaping.
func marshal(doc map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	keys := make([]string, 0, len(doc))
	for k := range doc {
		if k != "resourceType" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if _, ok := doc["resourceType"]; ok {
		keys = append([]string{"resourceType"}, keys...)
	}
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(doc[k]); err != nil {
			return nil, fmt.Errorf("fhir: write %s: %w", k, err)
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
