// This file reads the entries of a transaction or batch Bundle a client
// posts: what each asks (method, url, conditions) and its resource's JSON,
// and checks the Bundle's internal references.

package fhir

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Entry is one Bundle entry's request.
type Entry struct {
	FullURL     string
	Method      string // POST, PUT
	URL         string // Type, Type/id or Type?identifier=...
	IfNoneExist string
	IfMatch     string
	Resource    []byte // the entry's resource, as written
	Type        string // its resourceType
}

type jsonBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
			IfMatch     string `json:"ifMatch"`
		} `json:"request"`
	} `json:"entry"`
}

// Entries reads a transaction or batch Bundle (already Decoded, so well
// formed) into its entries. A Bundle of another type, an entry without a
// request or resource, a method other than POST or PUT, two entries with
// one fullUrl, and (in a transaction) a urn:uuid reference no entry's
// fullUrl has are Issues at the element.
func Entries(bundle []byte) (kind string, entries []Entry, err error) {
	var b jsonBundle
	if err := json.Unmarshal(bundle, &b); err != nil || b.ResourceType != "Bundle" {
		return "", nil, one(CodeStructure, "", "not a Bundle")
	}
	if b.Type != "transaction" && b.Type != "batch" {
		return "", nil, one(CodeNotSupported, "Bundle.type", "careflow takes transaction and batch Bundles, not "+strconv.Quote(b.Type))
	}
	seen := map[string]int{}
	for i, e := range b.Entry {
		at := fmt.Sprintf("Bundle.entry[%d]", i)
		if len(e.Resource) == 0 {
			return "", nil, one(CodeRequired, at+".resource", "each entry needs a resource (careflow takes only writes)")
		}
		if e.Request.Method != "POST" && e.Request.Method != "PUT" {
			return "", nil, one(CodeNotSupported, at+".request.method", "careflow takes POST and PUT entries, not "+strconv.Quote(e.Request.Method))
		}
		if e.FullURL != "" {
			if j, dup := seen[e.FullURL]; dup {
				return "", nil, one(CodeDuplicate, at+".fullUrl", fmt.Sprintf("entry %d has the same fullUrl", j))
			}
			seen[e.FullURL] = i
		}
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		_ = json.Unmarshal(e.Resource, &head)
		entries = append(entries, Entry{FullURL: e.FullURL, Method: e.Request.Method, URL: e.Request.URL,
			IfNoneExist: e.Request.IfNoneExist, IfMatch: e.Request.IfMatch, Resource: e.Resource, Type: head.ResourceType})
	}
	if b.Type == "transaction" {
		for i, e := range entries {
			for _, r := range References(e.Resource) {
				if strings.HasPrefix(r.Reference, "urn:") {
					if _, ok := seen[r.Reference]; !ok {
						return "", nil, one(CodeNotFound, fmt.Sprintf("Bundle.entry[%d].resource%s", i, strings.TrimPrefix(r.Path, e.Type)),
							"no entry of the Bundle has this reference's fullUrl")
					}
				}
			}
		}
	}
	return b.Type, entries, nil
}
