// This file writes what a FHIR server answers besides the resources
// themselves: its CapabilityStatement and the response Bundle of a
// transaction or batch. Each is built as a JSON document and checked, in
// the tests, by google/fhir's validating unmarshaller.

package fhir

import (
	"time"
)

// Capability describes one FHIR interface for its CapabilityStatement.
type Capability struct {
	Interface string    // careflow's interface name
	BaseURL   string    // the interface's FHIR base (https://host/fhir/apps)
	Resources []string  // the types it takes
	Software  string    // careflow's version
	Date      time.Time // when the statement was made (the engine's start)
	// SMART says bearer JWTs with SMART scopes are required.
	SMART bool
}

// CapabilityStatement is c as an R4 CapabilityStatement (kind instance):
// create, update (with If-Match and conditional update), conditional
// create, read, and transaction and batch Bundles, for each resource type.
func CapabilityStatement(c Capability) ([]byte, error) {
	var res []any
	for _, t := range c.Resources {
		res = append(res, map[string]any{
			"type": t,
			"interaction": []any{
				map[string]any{"code": "create"}, map[string]any{"code": "update"}, map[string]any{"code": "read"},
			},
			"versioning":        "versioned-update",
			"readHistory":       false,
			"updateCreate":      true,
			"conditionalCreate": true,
			"conditionalUpdate": true,
			"searchParam": []any{
				map[string]any{"name": "identifier", "type": "token", "documentation": "conditional create (If-None-Exist) and conditional update only"},
			},
		})
	}
	rest := map[string]any{
		"mode":          "server",
		"documentation": "careflow FHIR interface " + c.Interface + ": each write is stored in Kafka before it is answered, then validated, normalised, routed and delivered like an HL7 v2 message.",
		"resource":      res,
		"interaction":   []any{map[string]any{"code": "transaction"}, map[string]any{"code": "batch"}},
	}
	if c.SMART {
		rest["security"] = map[string]any{
			"service": []any{map[string]any{"coding": []any{map[string]any{
				"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}}}},
			"description": "Bearer JWTs from the configured issuer; writes need system/{type}.write (or .c/.u, SMART v2) scopes.",
		}
	}
	doc := map[string]any{
		"resourceType":   "CapabilityStatement",
		"status":         "active",
		"date":           c.Date.UTC().Format(time.RFC3339),
		"kind":           "instance",
		"software":       map[string]any{"name": "careflow", "version": c.Software},
		"implementation": map[string]any{"description": "careflow FHIR interface " + c.Interface, "url": c.BaseURL},
		"fhirVersion":    "4.0.1",
		"format":         []any{ContentType, "json"},
		"rest":           []any{rest},
	}
	return marshal(doc)
}

// ResponseEntry is one entry of a transaction or batch response.
type ResponseEntry struct {
	Status       string // "201 Created", "200 OK", "412 Precondition Failed"
	Location     string // Type/id/_history/v
	ETag         string
	LastModified time.Time
	Outcome      []byte // an OperationOutcome for an entry that failed (batch)
}

// ResponseBundle is a transaction-response or batch-response Bundle.
func ResponseBundle(kind string, id string, entries []ResponseEntry) ([]byte, error) {
	list := make([]any, 0, len(entries))
	for _, e := range entries {
		resp := map[string]any{"status": e.Status}
		if e.Location != "" {
			resp["location"] = e.Location
		}
		if e.ETag != "" {
			resp["etag"] = e.ETag
		}
		if !e.LastModified.IsZero() {
			resp["lastModified"] = e.LastModified.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		}
		if len(e.Outcome) > 0 {
			oo, err := document(e.Outcome)
			if err != nil {
				return nil, err
			}
			resp["outcome"] = oo
		}
		list = append(list, map[string]any{"response": resp})
	}
	return marshal(map[string]any{"resourceType": "Bundle", "id": id, "type": kind, "entry": list})
}
