// This file is FHIR → canonical: a resource written to careflow's FHIR
// API as the same avro.ClinicalEvent normalise makes of the HL7 v2
// message that says the same thing, so that routes and destinations
// need not know which standard an event came in. It reverses the
// v2-to-FHIR mappings the writers (patient.go, observation.go) apply;
// docs/fhir.md lists each row.

package fhir

import (
	"errors"
	"fmt"
	"strings"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/careflow-health/careflow/avro"
)

// Write is one FHIR write careflow's API accepted, as Canonical needs it.
type Write struct {
	Interface string // the API interface written to (/fhir/{interface}/)
	// Method is "create" (POST) or "update" (PUT). A transaction Bundle's
	// own entries say theirs; this is then the Bundle's, create.
	Method   string
	Resource Resource // the written resource, or a transaction Bundle
	// Related are the current versions of resources the written one
	// refers to, as ingest resolved them: the Patient of an Observation's
	// subject (Patient/123), a DiagnosticReport's result Observations, an
	// Observation's basedOn ServiceRequest.
	Related []Resource
}

// Methods of a Write.
const (
	MethodCreate = "create"
	MethodUpdate = "update"
)

// The canonical event types and their HL7 message types, as
// stages/normalise names them (map.go's eventTypes): a FHIR write becomes
// the event its v2 message would have been. connectors knows nothing of
// stages, so they are repeated here; TestCanonicalEventTypesAreNormalises
// holds the two to each other.
const (
	inEvPersonAdd    = "person_add"    // ADT^A28
	inEvPersonUpdate = "person_update" // ADT^A31
	inEvAdmit        = "admit"         // ADT^A01
	inEvRegister     = "register"      // ADT^A04
	inEvDischarge    = "discharge"     // ADT^A03
	inEvUpdate       = "update"        // ADT^A08
	inEvCancelAdmit  = "cancel_admit"  // ADT^A11
	inEvOrder        = "order"         // ORM^O01
	inEvResult       = "result"        // ORU^R01
)

// inFHIRVersion is what Provenance.Version holds for a FHIR write: the
// standard's version, as MSH-12 holds v2's.
const inFHIRVersion = "4.0.1"

// Canonical is w as the canonical event normalise makes of the matching
// HL7 v2 message:
//
//   - Patient: person_add ADT^A28 (create), person_update ADT^A31 (update);
//   - Observation, DiagnosticReport: result ORU^R01, the order from the
//     report's identifiers and basedOn ServiceRequest;
//   - ServiceRequest: order ORM^O01, ORC-1 from its status;
//   - Encounter: admit ADT^A01, update ADT^A08, discharge ADT^A03 or
//     cancel_admit ADT^A11, by status and method;
//   - AllergyIntolerance: person_update ADT^A31 with the allergy (AL1);
//   - Appointment: register ADT^A04 once the patient has arrived; the
//     canonical model has no appointment, so a booking is an error;
//   - a transaction Bundle: the event of its leading resource (a report,
//     else an observation, an order, an encounter, an allergy, a patient),
//     the others resolving its references.
//
// The event's patient is the resource's subject, resolved in the Bundle
// or Related, else its identifier; one careflow cannot identify is an
// *Error at the reference (Observation.subject), as is anything the
// canonical model has no place for; a transaction Entries refuses is
// its *Issues. Identifiers' authorities come from sys. EventID, CorrelationID and IdempotencyKey are ingest's to set.
func Canonical(w Write, sys *Systems) (*avro.ClinicalEvent, error) {
	if w.Method != MethodCreate && w.Method != MethodUpdate {
		return nil, fmt.Errorf("fhir: Canonical: method %q, want create or update", w.Method)
	}
	if w.Resource.Message() == nil {
		return nil, errors.New("fhir: Canonical: no resource")
	}
	s := &inScope{sys: sys, related: w.Related}
	primary, method := w.Resource, w.Method
	if b := w.Resource.Contained().GetBundle(); b != nil {
		if b.GetType().GetValue() != cpb.BundleTypeCode_TRANSACTION {
			return nil, &Error{Path: "Bundle.type", Source: "MSH-9", Err: errors.New("careflow maps a transaction Bundle as one event, and a batch's entries each as its own write")}
		}
		entries, err := Entries(w.Resource)
		if err != nil {
			return nil, err
		}
		s.bundle = b
		primary, method = inLeading(entries)
		if primary.Message() == nil {
			return nil, &Error{Path: "Bundle.entry", Source: "MSH-9", Err: errors.New("the transaction creates or updates no resource careflow maps")}
		}
	}
	ev, err := s.event(primary, method)
	if err != nil {
		return nil, err
	}
	ev.Provenance = avro.Provenance{
		Interface:       w.Interface,
		Version:         inFHIRVersion,
		EventTime:       inInstant(primary.Message(), w.Resource.Message()),
		ResourceType:    w.Resource.Type(),
		ResourceID:      w.Resource.ID(),
		ResourceVersion: w.Resource.VersionID(),
	}
	ev.Provenance.MessageTime = ev.Provenance.EventTime
	return ev, nil
}

// inLeadingTypes is the order in which a transaction's resources lead its event.
var inLeadingTypes = []string{"DiagnosticReport", "Observation", "ServiceRequest", "Encounter", "AllergyIntolerance", "Appointment", "Patient"}

// inLeading is the entry whose resource leads a transaction's event, the
// method its request wrote it with.
func inLeading(entries []Entry) (Resource, string) {
	for _, typ := range inLeadingTypes {
		for _, e := range entries {
			if e.Resource.Type() != typ || (e.Method != "POST" && e.Method != "PUT") {
				continue
			}
			method := MethodCreate
			if e.Method == "PUT" {
				method = MethodUpdate
			}
			return e.Resource, method
		}
	}
	return Resource{}, ""
}

// inScope is what one Canonical call resolves references against.
type inScope struct {
	sys     *Systems
	bundle  *bcrpb.Bundle // the transaction, if the write was one
	related []Resource
}

// errorf is an *Error at path (Observation.subject) of the resource m,
// named within the Bundle when the write was a transaction
// (Bundle.entry[2].resource.subject).
func (s *inScope) errorf(m proto.Message, path, source, format string, args ...any) *Error {
	for i, e := range s.bundle.GetEntry() {
		if r := (Resource{c: e.GetResource()}); e.GetResource() != nil && r.Message() == m {
			_, rest, _ := strings.Cut(path, ".")
			path = inJoinPath(fmt.Sprintf("Bundle.entry[%d].resource", i), rest)
			break
		}
	}
	return &Error{Path: path, Source: source, Err: fmt.Errorf(format, args...)}
}

func (s *inScope) event(r Resource, method string) (*avro.ClinicalEvent, error) {
	switch m := r.Message().(type) {
	case *ppb.Patient:
		ev := &avro.ClinicalEvent{EventType: inEvPersonAdd, MessageType: "ADT", TriggerEvent: "A28"}
		if method == MethodUpdate {
			ev.EventType, ev.TriggerEvent = inEvPersonUpdate, "A31"
		}
		p, err := s.fromPatient(m)
		if err != nil {
			return nil, err
		}
		ev.Patient = p
		return ev, nil
	}
	switch r.Type() {
	case "Observation", "DiagnosticReport":
		return s.fromResult(r)
	case "ServiceRequest":
		return s.fromServiceRequest(r, method)
	case "Encounter":
		return s.fromEncounter(r, method)
	case "AllergyIntolerance":
		return s.fromAllergy(r)
	case "Appointment":
		return s.fromAppointment(r)
	}
	return nil, s.errorf(r.Message(), r.Type(), "MSH-9", "careflow maps no %s to a canonical event", r.Type())
}

// resolve is the resource ref names, in the transaction or Related; zero
// when neither has it. A relative reference (Patient/123) matches an
// entry whose fullUrl ends in it, or a resource of that type and id; a
// version (/_history/2) is ignored, Related being the current ones.
func (s *inScope) resolve(ref *dpb.Reference) Resource {
	want := inReferenceString(ref)
	if want == "" || strings.HasPrefix(want, "#") {
		return Resource{}
	}
	if i := strings.Index(want, "/_history/"); i >= 0 {
		want = want[:i]
	}
	if s.bundle != nil {
		for _, e := range s.bundle.GetEntry() {
			url := e.GetFullUrl().GetValue()
			r := Resource{c: e.GetResource()}
			if e.GetResource() == nil {
				continue
			}
			if url == want || strings.HasSuffix(url, "/"+want) || r.Type()+"/"+r.ID() == want {
				return r
			}
		}
	}
	for _, r := range s.related {
		if typeID := r.Type() + "/" + r.ID(); typeID == want || strings.HasSuffix(want, "/"+typeID) {
			return r
		}
	}
	return Resource{}
}

// patientOf is the event's patient: the Patient ref resolves to, else
// the identifier ref carries (a logical reference). One careflow can
// identify neither way is an error at path: normalise's no_patient.
func (s *inScope) patientOf(owner proto.Message, ref *dpb.Reference, path string) (avro.Patient, error) {
	if p, ok := s.resolve(ref).Message().(*ppb.Patient); ok {
		return s.fromPatient(p)
	}
	if id := ref.GetIdentifier(); id.GetValue().GetValue() != "" {
		return avro.Patient{Identifiers: []avro.Identifier{s.fromIdentifier(id)}}, nil
	}
	if ref == nil {
		return avro.Patient{}, s.errorf(owner, path, "PID-3", "careflow files every event under a patient, and this names none")
	}
	return avro.Patient{}, s.errorf(owner, path, "PID-3", "the reference resolves to no Patient careflow was given, and carries no identifier")
}

// fromPatient reverses PID[Patient] (patient.go): identifiers, the first
// official (else usual, else first) name, birthDate at its precision,
// gender, addresses and telecoms. A Patient without an identifier is an
// error: careflow keys a patient's events by one (PID-3 is required).
func (s *inScope) fromPatient(p *ppb.Patient) (avro.Patient, error) {
	out := avro.Patient{}
	for _, id := range p.GetIdentifier() {
		if id.GetValue().GetValue() != "" {
			out.Identifiers = append(out.Identifiers, s.fromIdentifier(id))
		}
	}
	if len(out.Identifiers) == 0 {
		return avro.Patient{}, s.errorf(p, "Patient.identifier", "PID-3", "careflow keys a patient by an identifier, and this Patient has none")
	}
	if n := inName(p.GetName()); n != nil {
		out.FamilyName = n.GetFamily().GetValue()
		for _, g := range n.GetGiven() {
			out.GivenNames = append(out.GivenNames, g.GetValue())
		}
	}
	if d := p.GetBirthDate(); d != nil {
		out.BirthDate = inDate(d)
	}
	out.Sex = map[cpb.AdministrativeGenderCode_Value]string{
		cpb.AdministrativeGenderCode_MALE: "M", cpb.AdministrativeGenderCode_FEMALE: "F",
		cpb.AdministrativeGenderCode_OTHER: "O", cpb.AdministrativeGenderCode_UNKNOWN: "U",
	}[p.GetGender().GetValue()]
	for _, a := range p.GetAddress() {
		out.Addresses = append(out.Addresses, fromAddress(a))
	}
	for _, t := range p.GetTelecom() {
		if t.GetValue().GetValue() != "" {
			out.Telecoms = append(out.Telecoms, fromContactPoint(t))
		}
	}
	return out, nil
}

// fromIdentifier reverses identifier(): the authority from the system
// (Systems.Authority), else the assigner's display, which the writer uses
// for an authority with no system; the v2-0203 type code.
func (s *inScope) fromIdentifier(id *dpb.Identifier) avro.Identifier {
	out := avro.Identifier{Value: id.GetValue().GetValue(),
		AssigningAuthority: s.sys.AuthorityOf(id.GetSystem().GetValue(), id.GetAssigner().GetDisplay().GetValue())}
	out.TypeCode = inTypeCode(id.GetType())
	return out
}

// inTypeCode is the HL7 table 0203 code of an identifier type: the coding
// in v2-0203, else "" (a type in another system has no CX.5).
func inTypeCode(cc *dpb.CodeableConcept) string {
	for _, c := range cc.GetCoding() {
		if c.GetSystem().GetValue() == v2IdentifierTypes {
			return c.GetCode().GetValue()
		}
	}
	return ""
}

func inName(names []*dpb.HumanName) *dpb.HumanName {
	for _, use := range []cpb.NameUseCode_Value{cpb.NameUseCode_OFFICIAL, cpb.NameUseCode_USUAL} {
		for _, n := range names {
			if n.GetUse().GetValue() == use {
				return n
			}
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return nil
}

// fromAddress reverses address(): line[0] street, line[1] other; use
// home H, work B, temp C, old BA (XAD.7, table 0190).
func fromAddress(a *dpb.Address) avro.Address {
	out := avro.Address{
		City: a.GetCity().GetValue(), State: a.GetState().GetValue(),
		PostalCode: a.GetPostalCode().GetValue(), Country: a.GetCountry().GetValue(),
	}
	if l := a.GetLine(); len(l) > 0 {
		out.Street = l[0].GetValue()
		if len(l) > 1 {
			out.Other = l[1].GetValue()
		}
	}
	out.Type = map[cpb.AddressUseCode_Value]string{
		cpb.AddressUseCode_HOME: "H", cpb.AddressUseCode_WORK: "B", cpb.AddressUseCode_TEMP: "C", cpb.AddressUseCode_OLD: "BA",
	}[a.GetUse().GetValue()]
	return out
}

// fromContactPoint reverses contactPoint(): system to XTN.3 equipment
// (fax FX, email Internet, pager BP, else PH), use to XTN.2 (home PRN,
// work WPN); mobile is equipment CP on the personal number, PRN^CP, and
// an e-mail address's use is NET.
func fromContactPoint(t *dpb.ContactPoint) avro.Telecom {
	out := avro.Telecom{Value: t.GetValue().GetValue(), Equipment: "PH"}
	switch t.GetSystem().GetValue() {
	case cpb.ContactPointSystemCode_FAX:
		out.Equipment = "FX"
	case cpb.ContactPointSystemCode_EMAIL:
		out.Equipment, out.Use = "Internet", "NET"
	case cpb.ContactPointSystemCode_PAGER:
		out.Equipment = "BP"
	}
	switch t.GetUse().GetValue() {
	case cpb.ContactPointUseCode_HOME:
		inSetIfEmpty(&out.Use, "PRN")
	case cpb.ContactPointUseCode_WORK:
		inSetIfEmpty(&out.Use, "WPN")
	case cpb.ContactPointUseCode_MOBILE:
		out.Use, out.Equipment = "PRN", "CP"
	}
	return out
}

func inSetIfEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}
