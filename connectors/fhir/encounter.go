// This file is v2-to-FHIR's PV1[Encounter]: the canonical visit as a FHIR
// R4 Encounter, its status from the event as the IG's Event[EncounterStatus]
// ConceptMap says.

package fhir

import (
	"errors"
	"strings"

	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	epb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/encounter_go_proto"

	"github.com/careflow-health/careflow/avro"
)

// Code systems of Encounter.class: v3 ActCode where the IG's
// PatientClass[EncounterClass] ConceptMap has one, else HL7 table 0004.
const (
	actCodes         = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	patientClasses   = "http://terminology.hl7.org/CodeSystem/v2-0004"
	participantTypes = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
)

// classes is PV1-2 (table 0004) to Encounter.class, the IG's
// PatientClass[EncounterClass] ConceptMap: E, I, O and P to ActCode, the
// rest in table 0004's own system.
var classes = map[string][2]string{ // code, system
	"E": {"EMER", actCodes}, "I": {"IMP", actCodes}, "O": {"AMB", actCodes}, "P": {"PRENC", actCodes},
	"R": {"R", patientClasses}, "B": {"B", patientClasses}, "C": {"C", patientClasses},
	"N": {"N", patientClasses}, "U": {"U", patientClasses},
}

// eventStatuses is the event to Encounter.status, the IG's
// Event[EncounterStatus] ConceptMap (A01, A02, A03, A04, A11, A13). An
// event not in it takes its status from PV1 (encounterStatus).
var eventStatuses = map[string]cpb.EncounterStatusCode_Value{
	"admit":            cpb.EncounterStatusCode_IN_PROGRESS, // A01
	"transfer":         cpb.EncounterStatusCode_IN_PROGRESS, // A02
	"discharge":        cpb.EncounterStatusCode_FINISHED,    // A03
	"register":         cpb.EncounterStatusCode_PLANNED,     // A04, as the IG says
	"cancel_admit":     cpb.EncounterStatusCode_CANCELLED,   // A11
	"cancel_discharge": cpb.EncounterStatusCode_IN_PROGRESS, // A13
}

// Encounter is e as a FHIR R4 Encounter (v2-to-FHIR PV1[Encounter]) for
// an event of eventType (avro.ClinicalEvent.EventType): PV1-19 visit
// number as the identifier (type VN, system sys's for PV1-3.4), PV1-2
// class, status from the event (else from PV1-45 and PV1-2), PV1-3 and
// PV1-6 locations, PV1-7 attending doctor, PV1-44/45 period; subject
// refs.Patient. It is validated; an invalid one is an *Error naming the
// element and its PV1 field.
func Encounter(e *avro.Encounter, eventType string, sys *Systems, refs Refs) (*epb.Encounter, error) {
	c, ok := classes[strings.ToUpper(e.PatientClass)]
	switch {
	case e.PatientClass == "":
		return nil, &Error{Path: "Encounter.class", Source: "PV1-2", Err: errors.New("no patient class, and Encounter.class is required")}
	case !ok:
		c = [2]string{e.PatientClass, ""} // outside table 0004: the code as sent, no system claimed
	}
	class := &dpb.Coding{Code: &dpb.Code{Value: c[0]}}
	if c[1] != "" {
		class.System = &dpb.Uri{Value: c[1]}
	}
	out := &epb.Encounter{
		Status:     &epb.Encounter_StatusCode{Value: encounterStatus(e, eventType)},
		ClassValue: class,
		Subject:    reference(refs.Patient),
	}
	if e.VisitNumber != "" {
		id := &dpb.Identifier{Value: str(e.VisitNumber), Type: &dpb.CodeableConcept{
			Coding: []*dpb.Coding{{System: &dpb.Uri{Value: v2IdentifierTypes}, Code: &dpb.Code{Value: "VN"}}},
			Text:   str("visit number"),
		}}
		if u := sys.SearchURI(e.Facility); u != "" {
			id.System = &dpb.Uri{Value: u}
		}
		out.Identifier = []*dpb.Identifier{id}
	}
	if l := placeOfCare(e.PointOfCare, e.Room, e.Bed, e.Facility); l != "" {
		st := cpb.EncounterLocationStatusCode_ACTIVE
		if strings.EqualFold(e.PatientClass, "P") {
			st = cpb.EncounterLocationStatusCode_PLANNED
		}
		out.Location = append(out.Location, &epb.Encounter_Location{
			Location: &dpb.Reference{Display: str(l)}, Status: &epb.Encounter_Location_StatusCode{Value: st},
		})
	}
	if e.PriorPointOfCare != "" {
		out.Location = append(out.Location, &epb.Encounter_Location{
			Location: &dpb.Reference{Display: str(e.PriorPointOfCare)},
			Status:   &epb.Encounter_Location_StatusCode{Value: cpb.EncounterLocationStatusCode_COMPLETED},
		})
	}
	if e.AttendingDoctor != "" {
		out.Participant = []*epb.Encounter_Participant{{
			Type: []*dpb.CodeableConcept{{Coding: []*dpb.Coding{{
				System: &dpb.Uri{Value: participantTypes}, Code: &dpb.Code{Value: "ATND"}, Display: str("attender"),
			}}}},
			Individual: &dpb.Reference{Identifier: &dpb.Identifier{Value: str(e.AttendingDoctor)}},
		}}
	}
	period := &dpb.Period{}
	if e.AdmitTime != "" {
		dt, err := dateTime(e.AdmitTime)
		if err != nil {
			return nil, &Error{Path: "Encounter.period.start", Source: "PV1-44", Err: err}
		}
		period.Start = dt
	}
	// A cancelled discharge reopens the visit: a PV1-45 still sent with it
	// is the discharge being undone, not an end.
	if e.DischargeTime != "" && eventType != "cancel_discharge" {
		dt, err := dateTime(e.DischargeTime)
		if err != nil {
			return nil, &Error{Path: "Encounter.period.end", Source: "PV1-45", Err: err}
		}
		period.End = dt
	}
	if period.Start != nil || period.End != nil {
		out.Period = period
	}
	if err := fhirvalidate.Validate(out); err != nil {
		return nil, &Error{Path: "Encounter", Source: "PV1", Err: err}
	}
	return out, nil
}

// encounterStatus is the event's status where the IG's event ConceptMap
// has one; else finished when PV1-45 is valued, else the IG's
// PatientClass[EncounterStatus]: P planned, U (or none) unknown, any other
// class in-progress.
func encounterStatus(e *avro.Encounter, eventType string) cpb.EncounterStatusCode_Value {
	if s, ok := eventStatuses[eventType]; ok {
		return s
	}
	switch {
	case e.DischargeTime != "":
		return cpb.EncounterStatusCode_FINISHED
	case strings.EqualFold(e.PatientClass, "P"):
		return cpb.EncounterStatusCode_PLANNED
	case e.PatientClass == "" || strings.EqualFold(e.PatientClass, "U"):
		return cpb.EncounterStatusCode_UNKNOWN
	}
	return cpb.EncounterStatusCode_IN_PROGRESS
}

// placeOfCare is PV1-3 as a location's display ("WARD-A, room 12, bed 3,
// HOSPITAL"): careflow has no Location resources to point at, and a
// display is what a person reading the Encounter needs.
func placeOfCare(pointOfCare, room, bed, facility string) string {
	var parts []string
	for _, p := range [][2]string{{"", pointOfCare}, {"room ", room}, {"bed ", bed}, {"", facility}} {
		if p[1] != "" {
			parts = append(parts, p[0]+p[1])
		}
	}
	return strings.Join(parts, ", ")
}
