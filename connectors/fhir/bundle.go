// This file renders a whole canonical event as one FHIR R4 transaction
// Bundle; so far, what the resources of a Bundle share: the references
// between them.

package fhir

import (
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
)

// Refs are the other resources a resource points at, each as a FHIR
// reference: a Bundle entry's fullUrl (urn:uuid:...) or Type/id. An empty
// one is left out.
type Refs struct {
	Patient   string   // subject (AllergyIntolerance.patient)
	Encounter string   // encounter
	BasedOn   string   // the order's ServiceRequest
	Results   []string // DiagnosticReport.result: the order's Observations
}

// reference is a reference to u, as FHIR JSON writes it ("reference": u);
// nil for "".
func reference(u string) *dpb.Reference {
	if u == "" {
		return nil
	}
	return &dpb.Reference{Reference: &dpb.Reference_Uri{Uri: &dpb.String{Value: u}}}
}

// references is reference of each of us, the empty ones left out.
func references(us ...string) []*dpb.Reference {
	var out []*dpb.Reference
	for _, u := range us {
		if r := reference(u); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// key is a resource's business identifier: the system and value its
// conditional URL searches.
type key struct{ system, value string }
