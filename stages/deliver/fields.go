// This file is the least-data filter: a destination's allow-list of
// canonical field paths (its `fields`, see docs/routing.md, "Least data per
// subscriber"), compiled once into a tree of closures and applied to every
// event before it is rendered, so that a field outside the list never
// leaves careflow for that destination, whatever the format.
//
// The filter clears in place what the list does not allow, so it costs no
// allocation. Its rules (the tables at the end) must name every field of
// each record they filter, checked when a list is compiled: a field added
// to avro.ClinicalEvent without a rule makes CompileFields fail (and
// TestFieldsEveryPathAlone with it) rather than go out unfiltered.

package deliver

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/careflow-health/careflow/avro"
)

// Fields is a destination's compiled allow-list of canonical fields. A nil
// *Fields allows everything. It is safe for concurrent use.
type Fields struct {
	apply func(*avro.ClinicalEvent)
}

// CompileFields compiles an allow-list of avro.ClinicalEvent paths
// (avro.EventFields) into a filter. A path naming a record or list keeps it
// whole; a path below a list applies to every element. The envelope
// (event_id ... trigger_event, provenance) is always kept, so an envelope
// path is accepted and changes nothing, and an empty list keeps only the
// envelope. The error joins one *avro.FieldPathError per bad entry.
func CompileFields(paths []string) (*Fields, error) {
	if errs := avro.CheckEventFields(paths); errs != nil {
		return nil, fmt.Errorf("fields: %w", errors.Join(errs...))
	}
	root := &node{}
	for _, f := range avro.EventFields() {
		if f.Envelope && !strings.Contains(f.Path, ".") {
			root.add(f.Path)
		}
	}
	for _, p := range paths {
		if f, _ := avro.LookupEventField(p); !f.Envelope {
			root.add(p)
		}
	}
	// order_index is structure, not content: it says which of this event's
	// orders an observation belongs to, and an HL7 message says the same by
	// placing the OBX after its OBR. Dropping it would file results under
	// the wrong order, so every kept observation keeps it.
	if obs := root.kids["observations"]; obs != nil && !obs.whole {
		obs.add("order_index")
	}
	apply, err := eventRules.compile(root)
	if err != nil {
		return nil, err
	}
	if root.kids["observations"] != nil && root.kids["orders"] == nil {
		// The destination receives no orders, so no observation may point
		// at one (-1 is "none" in the model).
		inner := apply
		apply = func(ev *avro.ClinicalEvent) {
			inner(ev)
			for i := range ev.Observations {
				ev.Observations[i].OrderIndex = -1
			}
		}
	}
	return &Fields{apply: apply}, nil
}

// Apply removes from ev, in place, every field f does not allow: values
// become "", lists the profile does not name become empty, an encounter
// with nothing allowed becomes nil (a nil one stays nil), and lists of
// which only some sub-fields are allowed keep their length, so that
// observations' order indexes still line up. A nil f changes nothing.
func (f *Fields) Apply(ev *avro.ClinicalEvent) {
	if f != nil {
		f.apply(ev)
	}
}

// node is one level of a compiled allow-list: the path is allowed whole,
// or only the sub-fields in kids are.
type node struct {
	path  string
	whole bool
	kids  map[string]*node
}

// add allows path, dotted and relative to n.
func (n *node) add(path string) {
	for name := range strings.SplitSeq(path, ".") {
		if n.whole {
			return // a parent already allows everything below it
		}
		kid := n.kids[name]
		if kid == nil {
			if n.kids == nil {
				n.kids = map[string]*node{}
			}
			kid = &node{path: strings.TrimPrefix(n.path+"."+name, ".")}
			n.kids[name] = kid
		}
		n = kid
	}
	n.whole, n.kids = true, nil
}

// rule removes one field of a T: all of it (clear), or what a node does
// not allow below it (part; nil for a value without sub-fields).
type rule[T any] struct {
	name  string
	clear func(*T)
	part  func(n *node) (func(*T), error)
}

// rules are the rules for every field of a T.
type rules[T any] []rule[T]

// compile returns the function that removes from a T what n does not
// allow. The rules must name every field of T: one missing would leave its
// field unfiltered, so that is an error, not a default.
func (rs rules[T]) compile(n *node) (func(*T), error) {
	if name := rs.missing(); name != "" {
		// A field was added to avro.ClinicalEvent without a rule here.
		return nil, fmt.Errorf("fields: careflow has no filter rule for %s", strings.TrimPrefix(n.path+"."+name, "."))
	}
	var steps []func(*T)
	for _, r := range rs {
		kid := n.kids[r.name]
		switch {
		case kid == nil:
			steps = append(steps, r.clear)
		case kid.whole || r.part == nil:
		default:
			step, err := r.part(kid)
			if err != nil {
				return nil, err
			}
			steps = append(steps, step)
		}
	}
	switch len(steps) {
	case 0:
		return func(*T) {}, nil
	case 1:
		return steps[0], nil
	}
	return func(x *T) {
		for _, step := range steps {
			step(x)
		}
	}, nil
}

// missing returns the json name of a field of T that rs has no rule for,
// or "" when every field has one. It reflects on T once per compile, never
// per event.
func (rs rules[T]) missing() string {
	t := reflect.TypeFor[T]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if !slices.ContainsFunc(rs, func(r rule[T]) bool { return r.name == name }) {
			return name
		}
	}
	return ""
}

// value is the rule for a field without sub-fields.
func value[T, V any](name string, at func(*T) *V) rule[T] {
	return rule[T]{name: name, clear: func(x *T) { var zero V; *at(x) = zero }}
}

// record is the rule for a record-valued field.
func record[T, R any](name string, at func(*T) *R, sub rules[R]) rule[T] {
	r := value(name, at)
	r.part = func(n *node) (func(*T), error) {
		step, err := sub.compile(n)
		return func(x *T) { step(at(x)) }, err
	}
	return r
}

// optional is the rule for a field holding a record or nil: nil stays nil.
func optional[T, R any](name string, at func(*T) **R, sub rules[R]) rule[T] {
	r := value(name, at)
	r.part = func(n *node) (func(*T), error) {
		step, err := sub.compile(n)
		return func(x *T) {
			if p := *at(x); p != nil {
				step(p)
			}
		}, err
	}
	return r
}

// list is the rule for a list of records: a partial profile filters every
// element and keeps the list's length.
func list[T, E any](name string, at func(*T) *[]E, elem rules[E]) rule[T] {
	r := value(name, at)
	r.part = func(n *node) (func(*T), error) {
		step, err := elem.compile(n)
		return func(x *T) {
			s := *at(x)
			for i := range s {
				step(&s[i])
			}
		}, err
	}
	return r
}

// The rules below name every field of avro.ClinicalEvent by its json tag.
// TestFieldsEveryPathAlone checks them against avro.EventFields.

var identifierRules = rules[avro.Identifier]{
	value("value", func(x *avro.Identifier) *string { return &x.Value }),
	value("assigning_authority", func(x *avro.Identifier) *string { return &x.AssigningAuthority }),
	value("type_code", func(x *avro.Identifier) *string { return &x.TypeCode }),
	value("assigning_facility", func(x *avro.Identifier) *string { return &x.AssigningFacility }),
}

var addressRules = rules[avro.Address]{
	value("street", func(x *avro.Address) *string { return &x.Street }),
	value("other", func(x *avro.Address) *string { return &x.Other }),
	value("city", func(x *avro.Address) *string { return &x.City }),
	value("state", func(x *avro.Address) *string { return &x.State }),
	value("postal_code", func(x *avro.Address) *string { return &x.PostalCode }),
	value("country", func(x *avro.Address) *string { return &x.Country }),
	value("type", func(x *avro.Address) *string { return &x.Type }),
}

var patientRules = rules[avro.Patient]{
	list("identifiers", func(x *avro.Patient) *[]avro.Identifier { return &x.Identifiers }, identifierRules),
	value("family_name", func(x *avro.Patient) *string { return &x.FamilyName }),
	value("given_names", func(x *avro.Patient) *[]string { return &x.GivenNames }),
	value("birth_date", func(x *avro.Patient) *string { return &x.BirthDate }),
	value("sex", func(x *avro.Patient) *string { return &x.Sex }),
	list("addresses", func(x *avro.Patient) *[]avro.Address { return &x.Addresses }, addressRules),
	list("prior_identifiers", func(x *avro.Patient) *[]avro.Identifier { return &x.PriorIdentifiers }, identifierRules),
	list("telecoms", func(x *avro.Patient) *[]avro.Telecom { return &x.Telecoms }, telecomRules),
	record("gp", func(x *avro.Patient) *avro.Practitioner { return &x.GP }, practitionerRules),
}

var telecomRules = rules[avro.Telecom]{
	value("value", func(x *avro.Telecom) *string { return &x.Value }),
	value("use", func(x *avro.Telecom) *string { return &x.Use }),
	value("equipment", func(x *avro.Telecom) *string { return &x.Equipment }),
}

var practitionerRules = rules[avro.Practitioner]{
	value("id", func(x *avro.Practitioner) *string { return &x.ID }),
	value("family_name", func(x *avro.Practitioner) *string { return &x.FamilyName }),
	value("given_name", func(x *avro.Practitioner) *string { return &x.GivenName }),
}

var nextOfKinRules = rules[avro.NextOfKin]{
	value("family_name", func(x *avro.NextOfKin) *string { return &x.FamilyName }),
	value("given_name", func(x *avro.NextOfKin) *string { return &x.GivenName }),
	value("relationship", func(x *avro.NextOfKin) *string { return &x.Relationship }),
	value("relationship_text", func(x *avro.NextOfKin) *string { return &x.RelationshipText }),
	value("phone", func(x *avro.NextOfKin) *string { return &x.Phone }),
}

var allergyRules = rules[avro.Allergy]{
	value("type", func(x *avro.Allergy) *string { return &x.Type }),
	value("code", func(x *avro.Allergy) *string { return &x.Code }),
	value("text", func(x *avro.Allergy) *string { return &x.Text }),
	value("coding_system", func(x *avro.Allergy) *string { return &x.CodingSystem }),
	value("severity", func(x *avro.Allergy) *string { return &x.Severity }),
	value("reaction", func(x *avro.Allergy) *string { return &x.Reaction }),
	value("alt_code", func(x *avro.Allergy) *string { return &x.AltCode }),
	value("alt_text", func(x *avro.Allergy) *string { return &x.AltText }),
	value("alt_coding_system", func(x *avro.Allergy) *string { return &x.AltCodingSystem }),
}

var encounterRules = rules[avro.Encounter]{
	value("visit_number", func(x *avro.Encounter) *string { return &x.VisitNumber }),
	value("patient_class", func(x *avro.Encounter) *string { return &x.PatientClass }),
	value("point_of_care", func(x *avro.Encounter) *string { return &x.PointOfCare }),
	value("room", func(x *avro.Encounter) *string { return &x.Room }),
	value("bed", func(x *avro.Encounter) *string { return &x.Bed }),
	value("facility", func(x *avro.Encounter) *string { return &x.Facility }),
	value("attending_doctor", func(x *avro.Encounter) *string { return &x.AttendingDoctor }),
	value("admit_time", func(x *avro.Encounter) *string { return &x.AdmitTime }),
	value("discharge_time", func(x *avro.Encounter) *string { return &x.DischargeTime }),
	value("prior_point_of_care", func(x *avro.Encounter) *string { return &x.PriorPointOfCare }),
}

var orderRules = rules[avro.Order]{
	value("control", func(x *avro.Order) *string { return &x.Control }),
	value("placer_order_number", func(x *avro.Order) *string { return &x.PlacerOrderNumber }),
	value("filler_order_number", func(x *avro.Order) *string { return &x.FillerOrderNumber }),
	value("placer_namespace", func(x *avro.Order) *string { return &x.PlacerNamespace }),
	value("placer_universal_id", func(x *avro.Order) *string { return &x.PlacerUniversalID }),
	value("placer_universal_id_type", func(x *avro.Order) *string { return &x.PlacerUniversalIDType }),
	value("filler_namespace", func(x *avro.Order) *string { return &x.FillerNamespace }),
	value("filler_universal_id", func(x *avro.Order) *string { return &x.FillerUniversalID }),
	value("filler_universal_id_type", func(x *avro.Order) *string { return &x.FillerUniversalIDType }),
	value("status", func(x *avro.Order) *string { return &x.Status }),
	value("service_code", func(x *avro.Order) *string { return &x.ServiceCode }),
	value("service_text", func(x *avro.Order) *string { return &x.ServiceText }),
	value("service_system", func(x *avro.Order) *string { return &x.ServiceSystem }),
	value("service_alt_code", func(x *avro.Order) *string { return &x.ServiceAltCode }),
	value("service_alt_text", func(x *avro.Order) *string { return &x.ServiceAltText }),
	value("service_alt_system", func(x *avro.Order) *string { return &x.ServiceAltSystem }),
	value("priority", func(x *avro.Order) *string { return &x.Priority }),
	value("ordered_at", func(x *avro.Order) *string { return &x.OrderedAt }),
	value("ordering_provider", func(x *avro.Order) *string { return &x.OrderingProvider }),
	value("result_status", func(x *avro.Order) *string { return &x.ResultStatus }),
	value("observed_at", func(x *avro.Order) *string { return &x.ObservedAt }),
}

var observationRules = rules[avro.Observation]{
	value("set_id", func(x *avro.Observation) *string { return &x.SetID }),
	value("order_index", func(x *avro.Observation) *int { return &x.OrderIndex }),
	value("value_type", func(x *avro.Observation) *string { return &x.ValueType }),
	value("code", func(x *avro.Observation) *string { return &x.Code }),
	value("text", func(x *avro.Observation) *string { return &x.Text }),
	value("coding_system", func(x *avro.Observation) *string { return &x.CodingSystem }),
	value("alt_code", func(x *avro.Observation) *string { return &x.AltCode }),
	value("alt_text", func(x *avro.Observation) *string { return &x.AltText }),
	value("alt_coding_system", func(x *avro.Observation) *string { return &x.AltCodingSystem }),
	value("value", func(x *avro.Observation) *string { return &x.Value }),
	value("units", func(x *avro.Observation) *string { return &x.Units }),
	value("units_text", func(x *avro.Observation) *string { return &x.UnitsText }),
	value("units_system", func(x *avro.Observation) *string { return &x.UnitsSystem }),
	value("units_alt_code", func(x *avro.Observation) *string { return &x.UnitsAltCode }),
	value("units_alt_text", func(x *avro.Observation) *string { return &x.UnitsAltText }),
	value("units_alt_system", func(x *avro.Observation) *string { return &x.UnitsAltSystem }),
	value("reference_range", func(x *avro.Observation) *string { return &x.ReferenceRange }),
	value("abnormal_flags", func(x *avro.Observation) *string { return &x.AbnormalFlags }),
	value("status", func(x *avro.Observation) *string { return &x.Status }),
	value("observed_at", func(x *avro.Observation) *string { return &x.ObservedAt }),
}

// eventRules covers the envelope too, which CompileFields always allows,
// so that the completeness check covers the top level like every record.
var eventRules = rules[avro.ClinicalEvent]{
	value("event_id", func(x *avro.ClinicalEvent) *string { return &x.EventID }),
	value("correlation_id", func(x *avro.ClinicalEvent) *string { return &x.CorrelationID }),
	value("idempotency_key", func(x *avro.ClinicalEvent) *string { return &x.IdempotencyKey }),
	value("event_type", func(x *avro.ClinicalEvent) *string { return &x.EventType }),
	value("message_type", func(x *avro.ClinicalEvent) *string { return &x.MessageType }),
	value("trigger_event", func(x *avro.ClinicalEvent) *string { return &x.TriggerEvent }),
	record("patient", func(x *avro.ClinicalEvent) *avro.Patient { return &x.Patient }, patientRules),
	optional("encounter", func(x *avro.ClinicalEvent) **avro.Encounter { return &x.Encounter }, encounterRules),
	list("orders", func(x *avro.ClinicalEvent) *[]avro.Order { return &x.Orders }, orderRules),
	list("observations", func(x *avro.ClinicalEvent) *[]avro.Observation { return &x.Observations }, observationRules),
	value("provenance", func(x *avro.ClinicalEvent) *avro.Provenance { return &x.Provenance }),
	// An answer's text may be another system's own words about the
	// patient: a destination's fields must name it to get it (reply_to
	// destinations do, config checks).
	optional("acknowledgment", func(x *avro.ClinicalEvent) **avro.Acknowledgment { return &x.Acknowledgment }, ackRules),
	list("next_of_kin", func(x *avro.ClinicalEvent) *[]avro.NextOfKin { return &x.NextOfKin }, nextOfKinRules),
	list("allergies", func(x *avro.ClinicalEvent) *[]avro.Allergy { return &x.Allergies }, allergyRules),
}

var ackRules = rules[avro.Acknowledgment]{
	value("code", func(x *avro.Acknowledgment) *string { return &x.Code }),
	value("control_id", func(x *avro.Acknowledgment) *string { return &x.ControlID }),
	value("text", func(x *avro.Acknowledgment) *string { return &x.Text }),
	list("errors", func(x *avro.Acknowledgment) *[]avro.AckError { return &x.Errors }, ackErrorRules),
}

var ackErrorRules = rules[avro.AckError]{
	value("code", func(x *avro.AckError) *string { return &x.Code }),
	value("application_code", func(x *avro.AckError) *string { return &x.ApplicationCode }),
	value("location", func(x *avro.AckError) *string { return &x.Location }),
	value("severity", func(x *avro.AckError) *string { return &x.Severity }),
	value("text", func(x *avro.AckError) *string { return &x.Text }),
}
