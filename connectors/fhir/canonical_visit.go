// This file is FHIR → canonical for visits and the patient's record
// beside them: Encounter as ADT's PV1 (v2-to-FHIR PV1[Encounter],
// reversed), AllergyIntolerance as AL1 (AL1[AllergyIntolerance]), and
// Appointment, which the canonical model has no record for.

package fhir

import (
	"strings"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	encpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/encounter_go_proto"

	"github.com/careflow-health/careflow/avro"
)

// fromPatientClasses is Encounter.class (v3 ActCode) to PV1-2 (table 0004),
// the IG's ConceptMap reversed: inpatient I, ambulatory O, emergency E,
// pre-admission P; any other class is U, unknown.
var fromPatientClasses = map[string]string{
	"IMP": "I", "ACUTE": "I", "NONAC": "I", "AMB": "O", "EMER": "E", "PRENC": "P",
	"OBSENC": "O", "SS": "O", "HH": "O", "VR": "O", "FLD": "O",
}

// fromEncounter maps an Encounter as the ADT its status says: arrived,
// triaged or in-progress is admit ADT^A01 when created and update ADT^A08
// when updated (as is onleave); finished is discharge ADT^A03; cancelled
// and entered-in-error cancel the admit (ADT^A11). planned is a
// pre-admit (A05) and unknown says nothing: normalise maps neither, so
// neither is mapped here.
func (s *inScope) fromEncounter(r Resource, method string) (*avro.ClinicalEvent, error) {
	e := r.Contained().GetEncounter()
	ev := &avro.ClinicalEvent{MessageType: "ADT"}
	switch st := e.GetStatus().GetValue(); st {
	case cpb.EncounterStatusCode_ARRIVED, cpb.EncounterStatusCode_TRIAGED, cpb.EncounterStatusCode_IN_PROGRESS:
		ev.EventType, ev.TriggerEvent = inEvAdmit, "A01"
		if method == MethodUpdate {
			ev.EventType, ev.TriggerEvent = inEvUpdate, "A08"
		}
	case cpb.EncounterStatusCode_ONLEAVE:
		ev.EventType, ev.TriggerEvent = inEvUpdate, "A08"
	case cpb.EncounterStatusCode_FINISHED:
		ev.EventType, ev.TriggerEvent = inEvDischarge, "A03"
	case cpb.EncounterStatusCode_CANCELLED, cpb.EncounterStatusCode_ENTERED_IN_ERROR:
		ev.EventType, ev.TriggerEvent = inEvCancelAdmit, "A11"
	default:
		return nil, s.errorf(e, "Encounter.status", "MSH-9", "careflow maps no Encounter of status %s to a canonical event", inCode(st))
	}
	p, err := s.patientOf(e, e.GetSubject(), "Encounter.subject")
	if err != nil {
		return nil, err
	}
	ev.Patient = p
	enc := &avro.Encounter{
		AdmitTime:     inPeriodStart(e.GetPeriod()),
		DischargeTime: inDateTime(e.GetPeriod().GetEnd()),
	}
	for _, id := range e.GetIdentifier() {
		if inTypeCode(id.GetType()) == "VN" || enc.VisitNumber == "" {
			enc.VisitNumber = id.GetValue().GetValue()
		}
	}
	if c := e.GetClassValue(); c != nil {
		enc.PatientClass = "U"
		if pc, ok := fromPatientClasses[c.GetCode().GetValue()]; ok {
			enc.PatientClass = pc
		}
	}
	for _, pt := range e.GetParticipant() {
		for _, t := range pt.GetType() {
			for _, c := range t.GetCoding() {
				if c.GetCode().GetValue() == "ATND" && enc.AttendingDoctor == "" {
					enc.AttendingDoctor = inReferenceID(pt.GetIndividual())
				}
			}
		}
	}
	fromLocations(enc, e.GetLocation())
	ev.Encounter = enc
	return ev, nil
}

// fromLocationParts are a location's physicalType (location-physical-type) to
// the PL component it fills: ward PV1-3.1, room .2, bed .3, building or
// site .4.
var fromLocationParts = map[string]int{"wa": 1, "ro": 2, "bd": 3, "bu": 4, "si": 4}

// fromLocations reverses PV1-3: v2-to-FHIR writes each PL component as a
// location with its physicalType; one without a type is the point of
// care. A location's name is the reference's display, else its id. A
// completed location is where the patient was, PV1-6's prior point of
// care.
func fromLocations(enc *avro.Encounter, locs []*encpb.Encounter_Location) {
	for _, l := range locs {
		name := l.GetLocation().GetDisplay().GetValue()
		if name == "" {
			name = inReferenceID(l.GetLocation())
		}
		if l.GetStatus().GetValue() == cpb.EncounterLocationStatusCode_COMPLETED {
			inSetIfEmpty(&enc.PriorPointOfCare, name)
			continue
		}
		part := 1
		for _, c := range l.GetPhysicalType().GetCoding() {
			if p, ok := fromLocationParts[c.GetCode().GetValue()]; ok {
				part = p
			}
		}
		switch part {
		case 1:
			inSetIfEmpty(&enc.PointOfCare, name)
		case 2:
			inSetIfEmpty(&enc.Room, name)
		case 3:
			inSetIfEmpty(&enc.Bed, name)
		case 4:
			inSetIfEmpty(&enc.Facility, name)
		}
	}
}

// fromAllergyTypes are AllergyIntolerance.category to AL1-2 (table 0127):
// medication DA, food FA, environment EA; biologic has no 0127 code.
var fromAllergyTypes = map[cpb.AllergyIntoleranceCategoryCode_Value]string{
	cpb.AllergyIntoleranceCategoryCode_MEDICATION: "DA", cpb.AllergyIntoleranceCategoryCode_FOOD: "FA",
	cpb.AllergyIntoleranceCategoryCode_ENVIRONMENT: "EA",
}

// fromAllergy maps an AllergyIntolerance the patient has (not refuted,
// entered in error, resolved or inactive) as person_update ADT^A31 with
// the allergy as its one AL1. v2's own allergy messages (A60) carry IAM,
// not AL1, and normalise maps none of them; A31's ADT_A05 structure
// carries AL1, and an allergy is the person's, not a visit's, so it is
// the event the canonical model has for it. Severity is the first
// reaction's (AL1-4, table 0128), else the criticality's; the reactions
// are each manifestation's text, joined by "~" as AL1-5's repetitions.
func (s *inScope) fromAllergy(r Resource) (*avro.ClinicalEvent, error) {
	ai := r.Contained().GetAllergyIntolerance()
	// AL1 has no status: whatever it lists, the patient has. An allergy
	// refuted, entered in error, resolved or inactive would be sent as one
	// the patient has, so it is refused rather than mapped.
	for _, st := range []struct {
		path string
		cc   *dpb.CodeableConcept
		not  []string
	}{
		{"AllergyIntolerance.verificationStatus", ai.GetVerificationStatus(), []string{"refuted", "entered-in-error"}},
		{"AllergyIntolerance.clinicalStatus", ai.GetClinicalStatus(), []string{"inactive", "resolved"}},
	} {
		for _, c := range st.cc.GetCoding() {
			for _, not := range st.not {
				if c.GetCode().GetValue() == not {
					return nil, s.errorf(ai, st.path, "AL1", "AL1 lists only allergies the patient has, and this one is %s", not)
				}
			}
		}
	}
	p, err := s.patientOf(ai, ai.GetPatient(), "AllergyIntolerance.patient")
	if err != nil {
		return nil, err
	}
	a := avro.Allergy{}
	if cats := ai.GetCategory(); len(cats) > 0 {
		a.Type = fromAllergyTypes[cats[0].GetValue()]
	}
	pc, alt := inConcept(ai.GetCode())
	a.Code, a.Text, a.CodingSystem = pc.code, pc.text, pc.system
	a.AltCode, a.AltText, a.AltCodingSystem = alt.code, alt.text, alt.system
	var reactions []string
	for _, re := range ai.GetReaction() {
		if a.Severity == "" {
			a.Severity = map[cpb.AllergyIntoleranceSeverityCode_Value]string{
				cpb.AllergyIntoleranceSeverityCode_SEVERE: "SV", cpb.AllergyIntoleranceSeverityCode_MODERATE: "MO",
				cpb.AllergyIntoleranceSeverityCode_MILD: "MI",
			}[re.GetSeverity().GetValue()]
		}
		for _, m := range re.GetManifestation() {
			if t := inText(m); t != "" {
				reactions = append(reactions, t)
			}
		}
	}
	if a.Severity == "" {
		a.Severity = map[cpb.AllergyIntoleranceCriticalityCode_Value]string{
			cpb.AllergyIntoleranceCriticalityCode_HIGH: "SV", cpb.AllergyIntoleranceCriticalityCode_LOW: "MI",
			cpb.AllergyIntoleranceCriticalityCode_UNABLE_TO_ASSESS: "U",
		}[ai.GetCriticality().GetValue()]
	}
	a.Reaction = strings.Join(reactions, "~")
	if a.Code == "" && a.Text == "" {
		return nil, s.errorf(ai, "AllergyIntolerance.code", "AL1-3", "the allergy names no allergen (AL1-3 is required)")
	}
	return &avro.ClinicalEvent{EventType: inEvPersonUpdate, MessageType: "ADT", TriggerEvent: "A31", Patient: p, Allergies: []avro.Allergy{a}}, nil
}

// inText is a concept's text, else its first coding's display, else its
// code.
func inText(cc *dpb.CodeableConcept) string {
	if t := cc.GetText().GetValue(); t != "" {
		return t
	}
	for _, c := range cc.GetCoding() {
		if d := c.GetDisplay().GetValue(); d != "" {
			return d
		}
		if v := c.GetCode().GetValue(); v != "" {
			return v
		}
	}
	return ""
}

// fromAppointment maps an Appointment the patient has arrived for
// (arrived, checked-in) as register ADT^A04, the outpatient arrival:
// the patient participant, the first practitioner as the attending
// doctor, the first location as the point of care, start as the admit
// time, class O. The canonical model has no appointment, so a booking
// (proposed, pending, booked, waitlist) and its end (cancelled, noshow,
// fulfilled, entered-in-error) are errors, as normalise refuses an
// SIU: guessing an event would mislead every destination. Lost even when
// mapped: the appointment's identifiers, service type, reason, planned
// end and duration, and every participant after the first of each kind.
func (s *inScope) fromAppointment(r Resource) (*avro.ClinicalEvent, error) {
	ap := r.Contained().GetAppointment()
	switch st := ap.GetStatus().GetValue(); st {
	case cpb.AppointmentStatusCode_ARRIVED, cpb.AppointmentStatusCode_CHECKED_IN:
	default:
		return nil, s.errorf(ap, "Appointment.status", "MSH-9",
			"the canonical model has no appointment: careflow maps one only once the patient has arrived (arrived, checked-in), not %s", inCode(st))
	}
	var patient *dpb.Reference
	enc := &avro.Encounter{PatientClass: "O", AdmitTime: inInstantValue(ap.GetStart())}
	for _, pt := range ap.GetParticipant() {
		ref := pt.GetActor()
		switch {
		case ref.GetPatientId() != nil || strings.HasPrefix(inReferenceString(ref), "Patient/") || s.resolve(ref).Type() == "Patient":
			if patient == nil {
				patient = ref
			}
		case ref.GetPractitionerId() != nil:
			inSetIfEmpty(&enc.AttendingDoctor, inReferenceID(ref))
		case ref.GetLocationId() != nil:
			name := ref.GetDisplay().GetValue()
			if name == "" {
				name = inReferenceID(ref)
			}
			inSetIfEmpty(&enc.PointOfCare, name)
		}
	}
	p, err := s.patientOf(ap, patient, "Appointment.participant.actor")
	if err != nil {
		return nil, err
	}
	return &avro.ClinicalEvent{EventType: inEvRegister, MessageType: "ADT", TriggerEvent: "A04", Patient: p, Encounter: enc}, nil
}
