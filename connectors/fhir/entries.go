// This file reads a transaction or batch Bundle, as a client posts it to
// careflow's FHIR base, into its entries, and checks that the entries'
// urn:uuid references name entries of the same Bundle.

package fhir

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/google/fhir/go/jsonformat"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Entry is one entry of a transaction or batch Bundle.
type Entry struct {
	FullURL  string   // urn:uuid:... for a resource the transaction creates
	Resource Resource // zero for a DELETE or GET
	// The request: Method is GET, HEAD, POST, PUT, DELETE or PATCH; URL is
	// relative to the base (Patient, Patient/123, Patient?identifier=...).
	Method, URL          string
	IfNoneExist, IfMatch string
}

// Entries reads b, a transaction or batch Bundle, entry by entry. A
// Bundle of another type, an entry without a request, a POST or PUT
// without a resource, two entries with one fullUrl, and a urn:uuid
// reference that no entry's fullUrl has are *Issues at the element
// (Bundle.entry[2].resource.subject).
func Entries(b Resource) ([]Entry, error) {
	bundle := b.Contained().GetBundle()
	if bundle == nil {
		return nil, inOne(CodeValue, "", fmt.Sprintf("careflow takes a transaction or batch Bundle here, not a %s", inOrNone(b.Type())))
	}
	switch bundle.GetType().GetValue() {
	case cpb.BundleTypeCode_TRANSACTION, cpb.BundleTypeCode_BATCH:
	default:
		return nil, inOne(CodeValue, "Bundle.type", "careflow takes transaction and batch Bundles")
	}
	var (
		issues  []Issue
		entries []Entry
		urls    = map[string]int{}
	)
	for i, e := range bundle.GetEntry() {
		at := "Bundle.entry[" + strconv.Itoa(i) + "]"
		out := Entry{FullURL: e.GetFullUrl().GetValue()}
		if e.GetResource() != nil {
			out.Resource = Resource{c: e.GetResource()}
		}
		if r := e.GetRequest(); r == nil {
			issues = append(issues, Issue{SeverityError, CodeRequired, at + ".request", "an entry of a transaction or batch needs a request"})
		} else {
			out.Method = strings.ReplaceAll(r.GetMethod().GetValue().String(), "INVALID_UNINITIALIZED", "")
			out.URL, out.IfNoneExist, out.IfMatch = r.GetUrl().GetValue(), r.GetIfNoneExist().GetValue(), r.GetIfMatch().GetValue()
			if (out.Method == "POST" || out.Method == "PUT") && out.Resource.Message() == nil {
				issues = append(issues, Issue{SeverityError, CodeRequired, at + ".resource", out.Method + " needs a resource"})
			}
		}
		if out.FullURL != "" {
			if j, dup := urls[out.FullURL]; dup {
				issues = append(issues, Issue{SeverityError, CodeDuplicate, at + ".fullUrl", fmt.Sprintf("entry %d has the same fullUrl", j)})
			} else {
				urls[out.FullURL] = i
			}
		}
		entries = append(entries, out)
	}
	for i, e := range entries {
		if e.Resource.Message() == nil {
			continue
		}
		inReferences(e.Resource.Message().ProtoReflect(), "Bundle.entry["+strconv.Itoa(i)+"].resource", func(path string, ref *dpb.Reference) {
			uri := ref.GetUri().GetValue()
			if !strings.HasPrefix(uri, "urn:uuid:") {
				return
			}
			if _, ok := urls[uri]; !ok {
				issues = append(issues, Issue{SeverityError, CodeNotFound, path, "no entry of the Bundle has this urn:uuid as its fullUrl"})
			}
		})
	}
	if len(issues) > 0 {
		return nil, &Issues{Issues: issues}
	}
	return entries, nil
}

func inOrNone(s string) string {
	if s == "" {
		return "missing resource"
	}
	return s
}

var inReferenceName = (&dpb.Reference{}).ProtoReflect().Descriptor().FullName()

// inReferences calls visit with every Reference in m and its FHIRPath
// below path, in field order. Contained resources are not entered: their
// references are the container's business, not the Bundle's.
func inReferences(m protoreflect.Message, path string, visit func(string, *dpb.Reference)) {
	if m.Descriptor().FullName() == inReferenceName {
		visit(path, m.Interface().(*dpb.Reference))
		return
	}
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if f.Message() == nil || f.JSONName() == "contained" {
			return true
		}
		name := f.JSONName()
		if f.IsList() {
			for i := 0; i < v.List().Len(); i++ {
				inReferences(v.List().Get(i).Message(), path+"."+name+"["+strconv.Itoa(i)+"]", visit)
			}
			return true
		}
		inner := v.Message()
		if inIsChoice(f) {
			// value[x]: FHIRPath names the choice by its type (valueReference)
			which := inner.WhichOneof(inner.Descriptor().Oneofs().Get(0))
			if which == nil {
				return true
			}
			name, inner = name+inUpperFirst(which.JSONName()), inner.Get(which).Message()
		}
		inReferences(inner, path+"."+name, visit)
		return true
	})
}

// inReferenceString is ref as written in FHIR JSON (Patient/123,
// urn:uuid:..., #contained); "" when it has no reference, only an
// identifier or a display.
func inReferenceString(ref *dpb.Reference) string {
	if ref == nil {
		return ""
	}
	if u := ref.GetUri().GetValue(); u != "" {
		return u
	}
	c := proto.Clone(ref).(*dpb.Reference)
	if err := jsonformat.DenormalizeReference(c); err != nil {
		return ""
	}
	return c.GetUri().GetValue()
}
