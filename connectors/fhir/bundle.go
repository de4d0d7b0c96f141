// This file renders a whole canonical event as one FHIR R4 transaction
// Bundle: which resources an event makes, the business identifier each is
// updated by, and the references between them. docs/fhir.md has the rules.

package fhir

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"

	"github.com/careflow-health/careflow/avro"
)

// ErrNotRendered is returned, wrapped, for an event FHIR has no resources
// for (careflow's own acknowledgments, a filler's order response): the
// caller skips it rather than dead-lettering it.
var ErrNotRendered = errors.New("event not rendered as FHIR")

// ErrNoIdentifier is the cause, in an *Error, of a resource careflow
// cannot identify: without a business identifier a redelivery would
// create it twice, so careflow refuses the event instead of duplicating
// a patient, an order or a result.
var ErrNoIdentifier = errors.New("no business identifier to update it by")

// Systems of the identifiers careflow itself writes.
const (
	// controlIDSystem is Bundle.identifier's: the careflow control id.
	controlIDSystem = "urn:careflow:control-id"
	// derivedSystem is the system of the identifiers careflow derives
	// (an Observation's, an AllergyIntolerance's): FHIR's system for a
	// value that is itself a URI, here a name-based urn:uuid.
	derivedSystem = "urn:ietf:rfc:3986"
)

// BundleOptions are what TransactionBundle needs beyond the event.
type BundleOptions struct {
	// Systems writes identifiers and their conditional URLs; nil knows
	// only the defaults (NHS, CHI).
	Systems *Systems
	// ID is the careflow control id of the delivery, written as
	// Bundle.identifier so that a server can see a redelivery. "" leaves
	// it out.
	ID string
	// PatientAuthorities are the assigning authorities whose identifier
	// keys a Patient's conditional update, most trusted first (the
	// estate's identity.trust): the same person is one Patient whichever
	// identifier a message lists first. An event with none of them uses
	// its first identifier.
	PatientAuthorities []string
}

// TransactionBundle is ev as a FHIR R4 transaction Bundle in FHIR JSON
// (Bundle, below). The same event gives the same bytes.
func TransactionBundle(ev *avro.ClinicalEvent, opts BundleOptions) ([]byte, error) {
	b, err := Bundle(ev, opts)
	if err != nil {
		return nil, err
	}
	return JSON(b)
}

// Bundle is ev as a FHIR R4 transaction Bundle: its Patient, Encounter,
// ServiceRequest per order, DiagnosticReport per reported order,
// Observation per OBX and AllergyIntolerance per AL1, each entry a
// conditional update (PUT Type?identifier=system|value) on its business
// identifier when the event's message owns the resource, else a
// conditional create (POST with ifNoneExist) that never overwrites it;
// fullUrls are urn:uuids derived from ev.EventID and references between
// entries use them. An acknowledgment or order response is ErrNotRendered;
// a resource with no identifier is an *Error with ErrNoIdentifier.
func Bundle(ev *avro.ClinicalEvent, opts BundleOptions) (*bpb.Bundle, error) {
	if ev == nil {
		return nil, errors.New("fhir: Bundle needs an event")
	}
	family, ok := families[ev.EventType]
	switch {
	case !ok && (ev.EventType == "acknowledgment" || ev.EventType == "order_response"):
		return nil, fmt.Errorf("fhir: %s event %s: %w", ev.EventType, ev.EventID, ErrNotRendered)
	case !ok:
		return nil, fmt.Errorf("fhir: event %s: event type %q has no FHIR rendering; add it to connectors/fhir's families", ev.EventID, ev.EventType)
	}
	r := &render{ev: ev, sys: opts.Systems, trust: opts.PatientAuthorities, family: family, out: &bpb.Bundle{
		Type: &bpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_TRANSACTION},
	}}
	if opts.ID != "" {
		r.out.Identifier = &dpb.Identifier{System: &dpb.Uri{Value: controlIDSystem}, Value: str(opts.ID)}
	}
	for _, step := range []func() error{r.patients, r.encounter, r.orders, r.observations, r.allergies} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := fhirvalidate.Validate(r.out); err != nil {
		return nil, &Error{Path: "Bundle", Source: ev.MessageType, Err: err}
	}
	return r.out, nil
}

// families are the event types rendered, by the message family that owns
// the resources they carry.
var families = map[string]string{
	"admit": adt, "transfer": adt, "discharge": adt, "register": adt, "update": adt,
	"cancel_admit": adt, "cancel_discharge": adt, "person_add": adt, "person_update": adt,
	"merge": adt, "link": adt, "unlink": adt,
	"order":  orders,
	"result": results,
}

const (
	adt     = "adt"
	orders  = "order"
	results = "result"
)

// owners is which family's messages are the source of truth for a
// resource type: its entries are PUT by that family's events and only
// created if absent (POST ifNoneExist) by others, so that a lab's copy of
// PID-3/5/7/8 in an ORU never replaces the patient's address and phone,
// nor a result's ORC the order's. An Observation is owned by whichever
// event carries it.
var owners = map[string]string{
	"Patient": adt, "Encounter": adt, "AllergyIntolerance": adt,
	"ServiceRequest": orders, "DiagnosticReport": results,
}

// render is one Bundle being built.
type render struct {
	ev      *avro.ClinicalEvent
	sys     *Systems
	trust   []string // BundleOptions.PatientAuthorities
	family  string
	out     *bpb.Bundle
	patient string // fullUrl of ev.Patient's entry
	pkey    key
	enc     string   // fullUrl of the Encounter's entry, "" when none
	srs     []string // fullUrl of each order's ServiceRequest
	reports []key    // each order's report key (filler, else placer)
}

// patients is ev.Patient's entry, keyed by its first identifier (the
// trust's order of PID-3), and for a merge, link or unlink the other
// record's.
func (r *render) patients() error {
	p := &r.ev.Patient
	k, err := r.identifierKey(r.trusted(p.Identifiers), "PID-3")
	if err != nil {
		return err
	}
	pat, err := Patient(p, r.sys)
	if err != nil {
		return err
	}
	r.patient, r.pkey = r.fullURL("Patient"), k
	var other *ppb.Patient
	var otherKey key
	otherURL := r.fullURL("Patient/other")
	switch r.ev.EventType {
	case "merge": // A40: the survivor replaces the prior record, now inactive and replaced-by it
		if otherKey, err = r.identifierKey(p.PriorIdentifiers, "MRG-1"); err != nil {
			return err
		}
		other = &ppb.Patient{Active: &dpb.Boolean{Value: false}, Link: []*ppb.Patient_Link{patientLink(r.patient, cpb.LinkTypeCode_REPLACED_BY)}}
		pat.Link = []*ppb.Patient_Link{patientLink(otherURL, cpb.LinkTypeCode_REPLACES)}
	case "link": // A24: two records of one person, kept apart
		if otherKey, err = r.identifierKey(p.PriorIdentifiers, "PID-3"); err != nil {
			return err
		}
		other = &ppb.Patient{}
		pat.Link = []*ppb.Patient_Link{patientLink(otherURL, cpb.LinkTypeCode_SEEALSO)}
	}
	r.add(r.patient, "Patient", k, &bpb.ContainedResource{OneofResource: &bpb.ContainedResource_Patient{Patient: pat}})
	if other != nil {
		for _, id := range p.PriorIdentifiers {
			other.Identifier = append(other.Identifier, identifier(id, r.sys))
		}
		// A merge's prior record is the survivor's to retire, so it is
		// PUT; a link's other record is only created if absent.
		res := &bpb.ContainedResource{OneofResource: &bpb.ContainedResource_Patient{Patient: other}}
		if r.ev.EventType == "merge" {
			r.put(otherURL, "Patient", otherKey, res)
		} else {
			r.post(otherURL, "Patient", otherKey, res)
		}
	}
	return nil
}

// trusted is ids with the most trusted authority's identifier first.
func (r *render) trusted(ids []avro.Identifier) []avro.Identifier {
	for _, a := range r.trust {
		for i, id := range ids {
			if id.Value != "" && strings.EqualFold(id.AssigningAuthority, a) {
				return append([]avro.Identifier{id}, append(slices.Clone(ids[:i]), ids[i+1:]...)...)
			}
		}
	}
	return ids
}

func patientLink(other string, typ cpb.LinkTypeCode_Value) *ppb.Patient_Link {
	return &ppb.Patient_Link{Other: reference(other), Type: &ppb.Patient_Link_TypeCode{Value: typ}}
}

// identifierKey is the key of ids' first identifier; an *Error with
// ErrNoIdentifier at source when there is none or it has no authority.
func (r *render) identifierKey(ids []avro.Identifier, source string) (key, error) {
	if len(ids) == 0 {
		return key{}, &Error{Path: "Patient.identifier", Source: source, Err: ErrNoIdentifier}
	}
	k := key{r.sys.SearchURI(ids[0].AssigningAuthority), ids[0].Value}
	if k.system == "" {
		return key{}, &Error{Path: "Patient.identifier.system", Source: source + ".4", Err: fmt.Errorf("the first identifier has no assigning authority: %w", ErrNoIdentifier)}
	}
	return k, nil
}

// encounter is the visit's entry, keyed by PV1-19 in the system of PV1-3.4
// (else MSH-4, the facility whose system assigned it). A PV1 without a
// visit number identifies no visit and is left out.
func (r *render) encounter() error {
	if r.ev.Encounter == nil || r.ev.Encounter.VisitNumber == "" {
		return nil
	}
	switch r.ev.EventType {
	case "person_add", "person_update", "merge", "link", "unlink":
		// About the person, not a visit: the PV1 of an A28 or A31 is
		// "not applicable", and an A40's is the survivor's, so none of
		// them may rewrite the Encounter.
		return nil
	}
	e := *r.ev.Encounter
	if e.Facility == "" {
		e.Facility = r.ev.Provenance.SendingFacility
	}
	if e.Facility == "" {
		return &Error{Path: "Encounter.identifier.system", Source: "PV1-3.4", Err: fmt.Errorf("neither PV1-3.4 nor MSH-4 names the visit number's facility: %w", ErrNoIdentifier)}
	}
	enc, err := Encounter(&e, r.ev.EventType, r.sys, Refs{Patient: r.patient})
	if err != nil {
		return err
	}
	r.enc = r.fullURL("Encounter")
	r.add(r.enc, "Encounter", key{r.sys.SearchURI(e.Facility), e.VisitNumber},
		&bpb.ContainedResource{OneofResource: &bpb.ContainedResource_Encounter{Encounter: enc}})
	return nil
}

// orders is a ServiceRequest per order, keyed by its placer order number
// (else the filler's), and for a result a DiagnosticReport per order with
// results, keyed by its filler order number (else the placer's).
func (r *render) orders() error {
	byOrder := map[int][]string{}
	for j, o := range r.ev.Observations {
		byOrder[o.OrderIndex] = append(byOrder[o.OrderIndex], r.fullURL("Observation/"+strconv.Itoa(j)))
	}
	for i := range r.ev.Orders {
		o := &r.ev.Orders[i]
		sk, rk := placerKey(o, r.sys), fillerKey(o, r.sys)
		if !sk.ok() {
			sk = rk
		}
		if !rk.ok() {
			rk = placerKey(o, r.sys)
		}
		if !sk.ok() {
			return &Error{Path: "ServiceRequest.identifier", Source: "ORC-2", Err: fmt.Errorf("order %d has no placer or filler order number with a namespace: %w", i+1, ErrNoIdentifier)}
		}
		sr, err := ServiceRequest(o, r.sys, Refs{Patient: r.patient, Encounter: r.enc})
		if err != nil {
			return err
		}
		u := r.fullURL("ServiceRequest/" + strconv.Itoa(i))
		r.srs, r.reports = append(r.srs, u), append(r.reports, rk)
		r.add(u, "ServiceRequest", sk, &bpb.ContainedResource{OneofResource: &bpb.ContainedResource_ServiceRequest{ServiceRequest: sr}})
		if r.family != results || (len(byOrder[i]) == 0 && o.ResultStatus == "") {
			continue
		}
		dr, err := DiagnosticReport(o, r.sys, Refs{Patient: r.patient, Encounter: r.enc, BasedOn: u, Results: byOrder[i]})
		if err != nil {
			return err
		}
		r.add(r.fullURL("DiagnosticReport/"+strconv.Itoa(i)), "DiagnosticReport", rk,
			&bpb.ContainedResource{OneofResource: &bpb.ContainedResource_DiagnosticReport{DiagnosticReport: dr}})
	}
	return nil
}

// observations is an Observation per OBX. Its identifier is careflow's,
// since the canonical model has no OBX-21: a name-based UUID of its
// order's report key, OBX-1 and OBX-3.1; an OBX outside any order (an
// ADT's) uses the patient's key, OBX-3.1 and OBX-14 (else the event time).
func (r *render) observations() error {
	for j := range r.ev.Observations {
		o := &r.ev.Observations[j]
		refs := Refs{Patient: r.patient, Encounter: r.enc}
		var name []string
		if i := o.OrderIndex; i >= 0 && i < len(r.reports) {
			refs.BasedOn = r.srs[i]
			name = []string{"obx", r.reports[i].system, r.reports[i].value, o.SetID, o.Code}
		} else {
			at := o.ObservedAt
			if at == "" {
				at = r.ev.Provenance.EventTime
			}
			name = []string{"obx-patient", r.pkey.system, r.pkey.value, o.SetID, o.Code, at}
		}
		obs, err := Observation(o, refs)
		if err != nil {
			return err
		}
		k := derivedKey(name...)
		obs.Identifier = []*dpb.Identifier{k.identifier()}
		r.add(r.fullURL("Observation/"+strconv.Itoa(j)), "Observation", k,
			&bpb.ContainedResource{OneofResource: &bpb.ContainedResource_Observation{Observation: obs}})
	}
	return nil
}

// allergies is an AllergyIntolerance per AL1, identified by a name-based
// UUID of the patient's key and the allergen (AL1-3.3 and .1, else the
// text), so that the same allergy sent again updates, not repeats.
func (r *render) allergies() error {
	for i := range r.ev.Allergies {
		a := &r.ev.Allergies[i]
		allergen := a.Code
		if allergen == "" {
			allergen = strings.ToUpper(strings.TrimSpace(a.Text))
		}
		if allergen == "" {
			return &Error{Path: "AllergyIntolerance.code", Source: "AL1-3", Err: fmt.Errorf("allergy %d names no allergen: %w", i+1, ErrNoIdentifier)}
		}
		ai, err := AllergyIntolerance(a, Refs{Patient: r.patient})
		if err != nil {
			return err
		}
		k := derivedKey("allergy", r.pkey.system, r.pkey.value, strings.ToUpper(a.CodingSystem), allergen)
		ai.Identifier = []*dpb.Identifier{k.identifier()}
		r.add(r.fullURL("AllergyIntolerance/"+strconv.Itoa(i)), "AllergyIntolerance", k,
			&bpb.ContainedResource{OneofResource: &bpb.ContainedResource_AllergyIntolerance{AllergyIntolerance: ai}})
	}
	return nil
}

// add is an entry PUT when this event's family owns typ, else POSTed if
// none exists.
func (r *render) add(fullURL, typ string, k key, res *bpb.ContainedResource) {
	if o, ok := owners[typ]; !ok || o == r.family {
		r.put(fullURL, typ, k, res)
		return
	}
	r.post(fullURL, typ, k, res)
}

func (r *render) put(fullURL, typ string, k key, res *bpb.ContainedResource) {
	r.entry(fullURL, res, &bpb.Bundle_Entry_Request{
		Method: &bpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_PUT},
		Url:    &dpb.Uri{Value: typ + "?" + k.query()},
	})
}

func (r *render) post(fullURL, typ string, k key, res *bpb.ContainedResource) {
	r.entry(fullURL, res, &bpb.Bundle_Entry_Request{
		Method:      &bpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_POST},
		Url:         &dpb.Uri{Value: typ},
		IfNoneExist: str(k.query()),
	})
}

func (r *render) entry(fullURL string, res *bpb.ContainedResource, req *bpb.Bundle_Entry_Request) {
	r.out.Entry = append(r.out.Entry, &bpb.Bundle_Entry{FullUrl: &dpb.Uri{Value: fullURL}, Resource: res, Request: req})
}

// fullURL is the entry's urn:uuid, a name-based UUID of the event id and
// the entry's place in the Bundle: the same event always gives the same
// fullUrls, so a redelivery is byte-identical.
func (r *render) fullURL(entry string) string {
	return "urn:uuid:" + nameUUID("entry", r.ev.EventID, entry)
}

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

// ok is whether k can be searched: a value in a known system. A value
// alone would match any system's.
func (k key) ok() bool { return k.system != "" && k.value != "" }

// query is k as a FHIR token search, identifier=system|value, each part
// percent-encoded where a URL query needs it.
func (k key) query() string {
	return "identifier=" + escape(k.system) + "|" + escape(k.value)
}

func (k key) identifier() *dpb.Identifier {
	return &dpb.Identifier{System: &dpb.Uri{Value: k.system}, Value: str(k.value)}
}

// derivedKey is a careflow-made identifier: a name-based UUID of parts,
// in derivedSystem.
func derivedKey(parts ...string) key {
	return key{derivedSystem, "urn:uuid:" + nameUUID(parts...)}
}

// escape percent-encodes all but RFC 3986's unreserved characters and the
// ':', '/' and '@' a system URI is made of, so that a value with '&', '#',
// '|', '+' or a space cannot end or change the search.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~:/@", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// namespace is careflow's UUID namespace for name-based UUIDs.
var namespace = [16]byte{0x16, 0xfa, 0xd7, 0x42, 0x3c, 0x09, 0x4e, 0xe7, 0x9f, 0x1b, 0x9b, 0x00, 0x8d, 0xe4, 0xe8, 0x82}

// nameUUID is the RFC 4122 version 5 (SHA-1, name-based) UUID of parts
// in careflow's namespace; parts are joined by a unit separator, which no
// HL7 value carries, so that ("a", "bc") and ("ab", "c") differ.
func nameUUID(parts ...string) string {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(strings.Join(parts, "\x1f")))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
