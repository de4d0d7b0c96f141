// This file is the inbound side's first step: FHIR R4 JSON, as a client
// posts it to careflow's FHIR API, read and validated by google/fhir's
// unmarshaller into a Resource, or refused with the Issues an
// OperationOutcome reports.

package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Supported are the resource types careflow's FHIR API takes: the ones
// Canonical maps, and the Bundles that carry them.
var Supported = []string{
	"Patient", "Encounter", "ServiceRequest", "Observation", "DiagnosticReport",
	"AllergyIntolerance", "Appointment", "Bundle",
}

// MaxBytes is the largest body Decode reads; a larger one is refused as
// too-costly before it is parsed.
const MaxBytes = 16 << 20

// inMaxDepth bounds how deep google/fhir's unmarshaller descends (it counts
// the dots of an element's path): a hostile body nested thousands deep is
// refused instead of exhausting the stack. The deepest spec example,
// a Bundle's contained Questionnaire item tree, is under 20.
const inMaxDepth = 64

// Resource is one decoded FHIR R4 resource, as google/fhir's
// ContainedResource. The zero value is no resource.
type Resource struct {
	c *bcrpb.ContainedResource
}

// NewResource wraps a resource proto (a *Patient from Patient, say) or a
// ContainedResource.
func NewResource(m proto.Message) (Resource, error) {
	if c, ok := m.(*bcrpb.ContainedResource); ok {
		return Resource{c: c}, nil
	}
	c := &bcrpb.ContainedResource{}
	oneof := c.ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource")
	for i := 0; i < oneof.Fields().Len(); i++ {
		f := oneof.Fields().Get(i)
		if f.Message().FullName() == m.ProtoReflect().Descriptor().FullName() {
			c.ProtoReflect().Set(f, protoreflect.ValueOfMessage(m.ProtoReflect()))
			return Resource{c: c}, nil
		}
	}
	return Resource{}, fmt.Errorf("fhir: %s is not an R4 resource", m.ProtoReflect().Descriptor().FullName())
}

// Contained is r as google/fhir's ContainedResource; nil for no resource.
func (r Resource) Contained() *bcrpb.ContainedResource { return r.c }

// Message is the resource itself (a *Patient, an *Observation, ...); nil
// for no resource.
func (r Resource) Message() proto.Message {
	if r.c == nil {
		return nil
	}
	m := r.c.ProtoReflect()
	f := m.WhichOneof(m.Descriptor().Oneofs().ByName("oneof_resource"))
	if f == nil {
		return nil
	}
	return m.Get(f).Message().Interface()
}

// Type is the resource type ("Patient"); "" for no resource.
func (r Resource) Type() string {
	m := r.Message()
	if m == nil {
		return ""
	}
	return string(m.ProtoReflect().Descriptor().Name())
}

// ID is the resource's logical id; "" when it has none (a create).
func (r Resource) ID() string { return inValue(r.Message(), "id") }

// VersionID is meta.versionId; "" when the sender gave none.
func (r Resource) VersionID() string { return inValue(r.Message(), "meta", "version_id") }

// inValue follows the named fields of m to a primitive and returns its
// value; "" where any is unset.
func inValue(m proto.Message, fields ...string) string {
	if m == nil {
		return ""
	}
	pr := m.ProtoReflect()
	for _, name := range append(fields, "value") {
		f := pr.Descriptor().Fields().ByName(protoreflect.Name(name))
		if f == nil || !pr.Has(f) {
			return ""
		}
		if f.Message() == nil {
			return pr.Get(f).String()
		}
		pr = pr.Get(f).Message()
	}
	return ""
}

// Decode reads one FHIR R4 JSON resource with google/fhir's validating
// unmarshaller (required elements, cardinality, primitive formats, the
// codes of required bindings). A body it refuses is an *Issues: invalid
// JSON is structure, a resourceType R4 does not define is invalid, one
// careflow does not take is not-supported; the rest name the element
// (Patient.birthDate) as OperationOutcome.issue.expression does.
func Decode(data []byte) (Resource, error) {
	if len(data) > MaxBytes {
		return Resource{}, inOne(CodeTooCostly, "", fmt.Sprintf("the body is %d bytes; careflow reads at most %d", len(data), MaxBytes))
	}
	rt, err := inResourceType(data)
	if err != nil {
		return Resource{}, err
	}
	if !inSupported(rt) {
		return Resource{}, inOne(CodeNotSupported, "", fmt.Sprintf("careflow does not take %s resources; it takes %s", rt, strings.Join(Supported, ", ")))
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return Resource{}, fmt.Errorf("fhir: build the R4 unmarshaller: %w", err)
	}
	u.MaxNestingDepth = inMaxDepth
	var rep inReporter
	m, err := u.UnmarshalWithErrorReporter(data, &rep)
	if err != nil {
		rep.add(err)
	}
	if len(rep.issues) > 0 {
		return Resource{}, &Issues{Issues: rep.issues}
	}
	c, ok := m.(*bcrpb.ContainedResource)
	if !ok {
		return Resource{}, fmt.Errorf("fhir: the R4 unmarshaller returned a %T", m)
	}
	return Resource{c: c}, nil
}

// inResourceType reads the body's resourceType before google/fhir does,
// so that JSON that does not parse, a type R4 does not define and a type
// careflow does not take are told apart, and so that the error names a
// byte offset rather than quoting the body.
func inResourceType(data []byte) (string, error) {
	var head struct {
		ResourceType json.RawMessage `json:"resourceType"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return "", inOne(CodeStructure, "", fmt.Sprintf("the body is not JSON: syntax error at byte %d", syn.Offset))
		case errors.As(err, &typ):
			return "", inOne(CodeStructure, "", "the body is not a JSON object")
		}
		return "", inOne(CodeStructure, "", "the body is not JSON")
	}
	if len(head.ResourceType) == 0 || bytes.Equal(head.ResourceType, []byte("null")) {
		return "", inOne(CodeRequired, "", "the body has no resourceType")
	}
	var rt string
	if err := json.Unmarshal(head.ResourceType, &rt); err != nil {
		return "", inOne(CodeStructure, "", "resourceType is not a string")
	}
	if !inKnownType(rt) {
		return "", inOne(CodeInvalid, "", "resourceType is not a FHIR R4 resource type")
	}
	return rt, nil
}

func inSupported(rt string) bool {
	for _, s := range Supported {
		if s == rt {
			return true
		}
	}
	return false
}

// inKnownType is whether R4 defines rt: whether ContainedResource has a
// field of that message.
func inKnownType(rt string) bool {
	fields := inContainedDescriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		if m := fields.Get(i).Message(); m != nil && string(m.Name()) == rt {
			return true
		}
	}
	return false
}

func inContainedDescriptor() protoreflect.MessageDescriptor {
	return (&bcrpb.ContainedResource{}).ProtoReflect().Descriptor()
}

// inReporter collects what google/fhir's unmarshaller and validator
// report as Issues.
type inReporter struct{ issues []Issue }

func (r *inReporter) ReportValidationError(_ string, err error) error {
	r.add(err)
	return nil
}

// ReportValidationWarning drops warnings: Decode's answer is accept or
// refuse, and google/fhir's R4 validator raises none careflow acts on.
func (r *inReporter) ReportValidationWarning(string, error) error { return nil }

// add reads google/fhir's errors by their text, one per line, each
// `error at "Patient.birthDate": invalid Date format`: the text is the
// library's promise (jsonpbhelper.UnmarshalError keeps what may hold
// patient data in Diagnostics, which Error leaves out), while the error
// types are internal to it and cannot be named here.
func (r *inReporter) add(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			r.issues = append(r.issues, inIssue(line))
		}
	}
}

// inIssue is one google/fhir error line as an Issue.
func inIssue(line string) Issue {
	path, details := "", line
	if rest, ok := strings.CutPrefix(line, `error at "`); ok {
		if i := strings.Index(rest, `": `); i >= 0 {
			path, details = rest[:i], rest[i+3:]
		}
	}
	is := Issue{Severity: SeverityError, Code: CodeValue, Expression: inExpression(path), Diagnostics: details}
	switch {
	case strings.HasPrefix(details, "missing required field "):
		is.Code = CodeRequired
		if field := strings.Trim(strings.TrimPrefix(details, "missing required field "), `"`); field != "" {
			is.Expression = inJoinPath(is.Expression, field)
		}
	case details == "unknown resource type":
		// the path ends in the type it did not know: the element is its parent
		is.Code = CodeInvalid
		if i := strings.LastIndex(path, "."); i >= 0 {
			is.Expression = inExpression(path[:i])
		}
	case details == "unknown field", details == "expected array", details == "invalid JSON",
		details == "invalid field", details == "invalid extension field",
		strings.HasPrefix(details, "array length mismatch"), strings.HasPrefix(details, "cannot accept multiple values"):
		is.Code = CodeStructure
	case details == "code type mismatch":
		is.Code = CodeCodeInvalid
	case strings.HasPrefix(details, "field exceeded the maximum nesting depth"):
		is.Code = CodeTooCostly
	}
	return is
}

func inJoinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// inExpression turns google/fhir's element paths into FHIRPath as
// OperationOutcome.issue.expression has it. The unmarshaller names a
// choice element as sent (Observation.valueQuantity) and a Bundle entry's
// resource with its type (Bundle.entry[0].resource.Patient.birthDate);
// the validator walks the protos, so it names a choice by its container
// (Observation.value.quantity) and an entry's resource by its oneof field
// (Bundle.entry[0].resource.patient.birthDate). Both become
// Observation.valueQuantity and Bundle.entry[0].resource.birthDate, by
// walking the R4 descriptors along the path. A primitive's extension side
// (_birthDate) and its value are the primitive's element (birthDate).
func inExpression(path string) string {
	if path == "" {
		return ""
	}
	segs := strings.Split(path, ".")
	var out []string
	cur := inContainedDescriptor()
	for i := 0; i < len(segs); i++ {
		seg := segs[i]
		if cur == nil {
			out = append(out, seg)
			continue
		}
		name := seg
		if j := strings.IndexByte(seg, '['); j >= 0 {
			name = seg[:j]
		}
		if cur.FullName() == inContainedDescriptor().FullName() {
			f := inResourceField(name)
			if f == nil {
				out, cur = append(out, seg), nil
				continue
			}
			if len(out) == 0 {
				out = append(out, string(f.Message().Name()))
			}
			cur = f.Message()
			continue
		}
		f := inField(cur, strings.TrimPrefix(name, "_"))
		switch {
		case f != nil && inIsChoice(f) && i+1 < len(segs):
			// the validator's container.choice: one FHIRPath name
			inner := inField(f.Message(), segs[i+1])
			if inner == nil {
				out, cur = append(out, seg), nil
				continue
			}
			out = append(out, name+inUpperFirst(segs[i+1]))
			cur, i = inner.Message(), i+1
		case f != nil && f.Message() == nil:
			// a primitive's own value: FHIRPath names the primitive
			cur = nil
		case f != nil:
			out, cur = append(out, strings.TrimPrefix(seg, "_")), f.Message()
		default:
			// the unmarshaller's valueQuantity: a choice's container and type
			out, cur = append(out, strings.TrimPrefix(seg, "_")), inChoice(cur, strings.TrimPrefix(name, "_"))
		}
	}
	return strings.Join(out, ".")
}

// inResourceField is ContainedResource's field for a resource type,
// named as the unmarshaller does (Patient) or as the validator does
// (patient).
func inResourceField(name string) protoreflect.FieldDescriptor {
	fields := inContainedDescriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.Message() != nil && (string(f.Message().Name()) == name || f.JSONName() == name) {
			return f
		}
	}
	return nil
}

func inField(m protoreflect.MessageDescriptor, jsonName string) protoreflect.FieldDescriptor {
	fields := m.Fields()
	for i := 0; i < fields.Len(); i++ {
		if f := fields.Get(i); f.JSONName() == jsonName {
			return f
		}
	}
	return nil
}

// inChoice is the message of the type a choice element's JSON name
// (valueQuantity) chose; nil when m has no such choice.
func inChoice(m protoreflect.MessageDescriptor, jsonName string) protoreflect.MessageDescriptor {
	fields := m.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if !inIsChoice(f) || !strings.HasPrefix(jsonName, f.JSONName()) {
			continue
		}
		rest := strings.TrimPrefix(jsonName, f.JSONName())
		if rest == "" {
			continue
		}
		if inner := inField(f.Message(), strings.ToLower(rest[:1])+rest[1:]); inner != nil {
			return inner.Message()
		}
	}
	return nil
}

func inIsChoice(f protoreflect.FieldDescriptor) bool {
	if f.Message() == nil {
		return false
	}
	v, _ := proto.GetExtension(f.Message().Options(), apb.E_IsChoiceType).(bool)
	return v
}

func inUpperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
