// This file writes careflow's JSON document for destinations that take
// JSON. The document is a published contract (docs/routing.md): fields are
// only ever added, every key is always present (empty string or empty
// list rather than missing), and it carries the canonical model only, never
// the raw inbound payload.

package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/careflow-health/careflow/avro"
)

// JSON renders ev as careflow's JSON document with controlID as its
// control_id. The document is UTF-8 (RFC 8259); a string of ev that is not
// is an error naming its key, never a silent U+FFFD.
func JSON(ev *avro.ClinicalEvent, controlID string) ([]byte, error) {
	doc := jsonEvent{
		ControlID:    controlID,
		EventType:    ev.EventType,
		MessageType:  ev.MessageType,
		TriggerEvent: ev.TriggerEvent,
		Patient: jsonPatient{
			Identifiers:      jsonIdentifiers(ev.Patient.Identifiers),
			FamilyName:       ev.Patient.FamilyName,
			GivenNames:       nonNil(ev.Patient.GivenNames),
			BirthDate:        ev.Patient.BirthDate,
			Sex:              ev.Patient.Sex,
			Addresses:        make([]jsonAddress, len(ev.Patient.Addresses)),
			PriorIdentifiers: jsonIdentifiers(ev.Patient.PriorIdentifiers),
			Telecoms:         make([]jsonTelecom, len(ev.Patient.Telecoms)),
			GP:               jsonPractitioner(ev.Patient.GP),
		},
		NextOfKin:    make([]jsonNextOfKin, len(ev.NextOfKin)),
		Allergies:    make([]jsonAllergy, len(ev.Allergies)),
		Orders:       make([]jsonOrder, len(ev.Orders)),
		Observations: make([]jsonObservation, len(ev.Observations)),
		Provenance: jsonProvenance{
			SourceInterface:      ev.Provenance.Interface,
			MessageID:            ev.Provenance.MessageID,
			ControlID:            ev.Provenance.ControlID,
			SendingApplication:   ev.Provenance.SendingApplication,
			SendingFacility:      ev.Provenance.SendingFacility,
			ReceivingApplication: ev.Provenance.ReceivingApplication,
			ReceivingFacility:    ev.Provenance.ReceivingFacility,
			Version:              ev.Provenance.Version,
			EventTime:            ev.Provenance.EventTime,
			MessageTime:          ev.Provenance.MessageTime,
			CodeMaps:             nonNil(ev.Provenance.CodeMaps),
		},
	}
	if !ev.Provenance.IngestTime.IsZero() {
		doc.Provenance.IngestTime = ev.Provenance.IngestTime.UTC().Format(time.RFC3339Nano)
	}
	for i, a := range ev.Patient.Addresses {
		doc.Patient.Addresses[i] = jsonAddress(a)
	}
	for i, x := range ev.Patient.Telecoms {
		doc.Patient.Telecoms[i] = jsonTelecom(x)
	}
	for i, k := range ev.NextOfKin {
		doc.NextOfKin[i] = jsonNextOfKin(k)
	}
	for i, a := range ev.Allergies {
		doc.Allergies[i] = jsonAllergy(a)
	}
	if e := ev.Encounter; e != nil {
		doc.Encounter = &jsonEncounter{
			VisitNumber:      e.VisitNumber,
			PatientClass:     e.PatientClass,
			PointOfCare:      e.PointOfCare,
			Room:             e.Room,
			Bed:              e.Bed,
			Facility:         e.Facility,
			AttendingDoctor:  e.AttendingDoctor,
			AdmitTime:        e.AdmitTime,
			DischargeTime:    e.DischargeTime,
			PriorPointOfCare: e.PriorPointOfCare,
		}
	}
	for i, o := range ev.Orders {
		doc.Orders[i] = jsonOrder(o)
	}
	for i, o := range ev.Observations {
		doc.Observations[i] = jsonObservation(o)
	}
	if a := ev.Acknowledgment; a != nil {
		doc.Acknowledgment = &jsonAck{Code: a.Code, ControlID: a.ControlID, Text: a.Text, Errors: make([]jsonAckError, len(a.Errors))}
		for i, e := range a.Errors {
			doc.Acknowledgment.Errors[i] = jsonAckError(e)
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render json for event %s: %w", ev.EventID, err)
	}
	// encoding/json writes invalid UTF-8 as \ufffd without a word, and
	// writes a real U+FFFD as itself: the escape in the output is the
	// cheap sign that something may be wrong, the walk the proof.
	if bytes.Contains(b, []byte(`\ufffd`)) {
		if path := avro.InvalidUTF8(doc); path != "" {
			return nil, fmt.Errorf("render json for event %s: %s is not valid UTF-8 (an event written before normalise decoded MSH-18; re-normalise it from careflow.raw)", ev.EventID, path)
		}
	}
	return b, nil
}

// The types below fix the document's key names and order independently of
// the Avro types, so that a schema change there cannot silently change what
// receivers get. Conversions from the avro types are plain struct
// conversions, so the compiler notices when the two drift apart.

type jsonEvent struct {
	ControlID    string            `json:"control_id"`
	EventType    string            `json:"event_type"`
	MessageType  string            `json:"message_type"`
	TriggerEvent string            `json:"trigger_event"`
	Patient      jsonPatient       `json:"patient"`
	Encounter    *jsonEncounter    `json:"encounter"` // null when the event has none
	Orders       []jsonOrder       `json:"orders"`
	Observations []jsonObservation `json:"observations"`
	NextOfKin    []jsonNextOfKin   `json:"next_of_kin"`
	Allergies    []jsonAllergy     `json:"allergies"`
	Provenance   jsonProvenance    `json:"provenance"`
	// Acknowledgment is left out when the event carries none (every
	// event but responses and careflow's own answers).
	Acknowledgment *jsonAck `json:"acknowledgment,omitempty"`
}

type jsonAck struct {
	Code      string         `json:"code"`
	ControlID string         `json:"control_id"`
	Text      string         `json:"text"`
	Errors    []jsonAckError `json:"errors"`
}

type jsonAckError struct {
	Code            string `json:"code"`
	ApplicationCode string `json:"application_code"`
	Location        string `json:"location"`
	Severity        string `json:"severity"`
	Text            string `json:"text"`
}

type jsonIdentifier struct {
	Value              string `json:"value"`
	AssigningAuthority string `json:"assigning_authority"`
	TypeCode           string `json:"type_code"`
	AssigningFacility  string `json:"assigning_facility"`
}

type jsonAddress struct {
	Street     string `json:"street"`
	Other      string `json:"other"`
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
	Type       string `json:"type"`
}

type jsonPatient struct {
	Identifiers      []jsonIdentifier `json:"identifiers"`
	FamilyName       string           `json:"family_name"`
	GivenNames       []string         `json:"given_names"`
	BirthDate        string           `json:"birth_date"`
	Sex              string           `json:"sex"`
	Addresses        []jsonAddress    `json:"addresses"`
	PriorIdentifiers []jsonIdentifier `json:"prior_identifiers"`
	Telecoms         []jsonTelecom    `json:"telecoms"`
	GP               jsonPractitioner `json:"gp"`
}

type jsonTelecom struct {
	Value     string `json:"value"`
	Use       string `json:"use"`
	Equipment string `json:"equipment"`
}

type jsonPractitioner struct {
	ID         string `json:"id"`
	FamilyName string `json:"family_name"`
	GivenName  string `json:"given_name"`
}

type jsonNextOfKin struct {
	FamilyName       string `json:"family_name"`
	GivenName        string `json:"given_name"`
	Relationship     string `json:"relationship"`
	RelationshipText string `json:"relationship_text"`
	Phone            string `json:"phone"`
}

type jsonAllergy struct {
	Type         string `json:"type"`
	Code         string `json:"code"`
	Text         string `json:"text"`
	CodingSystem string `json:"coding_system"`
	Severity     string `json:"severity"`
	Reaction     string `json:"reaction"`
	// The alternate coding: the local code when a code map gave the
	// standard one.
	AltCode         string `json:"alt_code"`
	AltText         string `json:"alt_text"`
	AltCodingSystem string `json:"alt_coding_system"`
}

type jsonEncounter struct {
	VisitNumber      string `json:"visit_number"`
	PatientClass     string `json:"patient_class"`
	PointOfCare      string `json:"point_of_care"`
	Room             string `json:"room"`
	Bed              string `json:"bed"`
	Facility         string `json:"facility"`
	AttendingDoctor  string `json:"attending_doctor"`
	AdmitTime        string `json:"admit_time"`
	DischargeTime    string `json:"discharge_time"`
	PriorPointOfCare string `json:"prior_point_of_care"`
}

type jsonOrder struct {
	Control               string `json:"control"`
	PlacerOrderNumber     string `json:"placer_order_number"`
	FillerOrderNumber     string `json:"filler_order_number"`
	PlacerNamespace       string `json:"placer_namespace"`
	PlacerUniversalID     string `json:"placer_universal_id"`
	PlacerUniversalIDType string `json:"placer_universal_id_type"`
	FillerNamespace       string `json:"filler_namespace"`
	FillerUniversalID     string `json:"filler_universal_id"`
	FillerUniversalIDType string `json:"filler_universal_id_type"`
	Status                string `json:"status"`
	ServiceCode           string `json:"service_code"`
	ServiceText           string `json:"service_text"`
	ServiceSystem         string `json:"service_system"`
	ServiceAltCode        string `json:"service_alt_code"`
	ServiceAltText        string `json:"service_alt_text"`
	ServiceAltSystem      string `json:"service_alt_system"`
	Priority              string `json:"priority"`
	OrderedAt             string `json:"ordered_at"`
	OrderingProvider      string `json:"ordering_provider"`
	ResultStatus          string `json:"result_status"`
	ObservedAt            string `json:"observed_at"`
}

type jsonObservation struct {
	SetID           string `json:"set_id"`
	OrderIndex      int    `json:"order_index"`
	ValueType       string `json:"value_type"`
	Code            string `json:"code"`
	Text            string `json:"text"`
	CodingSystem    string `json:"coding_system"`
	AltCode         string `json:"alt_code"`
	AltText         string `json:"alt_text"`
	AltCodingSystem string `json:"alt_coding_system"`
	Value           string `json:"value"`
	Units           string `json:"units"`
	UnitsText       string `json:"units_text"`
	UnitsSystem     string `json:"units_system"`
	UnitsAltCode    string `json:"units_alt_code"`
	UnitsAltText    string `json:"units_alt_text"`
	UnitsAltSystem  string `json:"units_alt_system"`
	ReferenceRange  string `json:"reference_range"`
	AbnormalFlags   string `json:"abnormal_flags"`
	Status          string `json:"status"`
	ObservedAt      string `json:"observed_at"`
}

type jsonProvenance struct {
	SourceInterface      string `json:"source_interface"`
	MessageID            string `json:"message_id"`
	ControlID            string `json:"control_id"`
	SendingApplication   string `json:"sending_application"`
	SendingFacility      string `json:"sending_facility"`
	ReceivingApplication string `json:"receiving_application"`
	ReceivingFacility    string `json:"receiving_facility"`
	Version              string `json:"version"`
	EventTime            string `json:"event_time"`
	MessageTime          string `json:"message_time"`
	IngestTime           string `json:"ingest_time"` // RFC 3339, UTC; "" when unknown
	// CodeMaps are the code maps (name@version) the event's codes were
	// read against; [] when none.
	CodeMaps []string `json:"code_maps"`
}

func jsonIdentifiers(ids []avro.Identifier) []jsonIdentifier {
	out := make([]jsonIdentifier, len(ids))
	for i, id := range ids {
		out[i] = jsonIdentifier(id)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
