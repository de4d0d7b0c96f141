// This file is v2-to-FHIR's ORC[ServiceRequest] and OBR[ServiceRequest]:
// one canonical order as a FHIR R4 ServiceRequest, and the order numbers
// (EI) every resource of an order is identified by.

package fhir

import (
	"errors"
	"strings"

	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"

	"github.com/careflow-health/careflow/avro"
)

// orderStatuses is ORC-5 (HL7 table 0038) to ServiceRequest.status, the
// IG's OrderStatus ConceptMap. ORC-5 wins over ORC-1, as the IG's ORC-1
// row says (IF ORC-5 NOT VALUED).
var orderStatuses = map[string]cpb.RequestStatusCode_Value{
	"CA": cpb.RequestStatusCode_REVOKED, "CM": cpb.RequestStatusCode_COMPLETED,
	"DC": cpb.RequestStatusCode_REVOKED, "ER": cpb.RequestStatusCode_ENTERED_IN_ERROR,
	"HD": cpb.RequestStatusCode_ON_HOLD, "IP": cpb.RequestStatusCode_ACTIVE,
	"RP": cpb.RequestStatusCode_REVOKED, "SC": cpb.RequestStatusCode_ACTIVE,
}

// orderControls is ORC-1 (HL7 table 0119) to ServiceRequest.status, the
// IG's OrderControlCode[ServiceRequest.status] ConceptMap, but for two
// codes: the IG reads CA (cancel) and HD (hold) as requests still to be
// confirmed, so active; careflow reads them as the placer's decision about
// its own request, as the IG already does for DC (discontinue: revoked),
// so that a FHIR server never shows a cancelled order as active. CA is
// revoked, HD on-hold. A code the IG leaves unmapped (RE, SC, UA, ...) is
// unknown, since status is required.
var orderControls = map[string]cpb.RequestStatusCode_Value{
	"AF": cpb.RequestStatusCode_ACTIVE, "CA": cpb.RequestStatusCode_REVOKED,
	"CR": cpb.RequestStatusCode_REVOKED, "DC": cpb.RequestStatusCode_REVOKED,
	"DF": cpb.RequestStatusCode_REVOKED, "DR": cpb.RequestStatusCode_REVOKED,
	"FU": cpb.RequestStatusCode_COMPLETED, "HD": cpb.RequestStatusCode_ON_HOLD,
	"HR": cpb.RequestStatusCode_ON_HOLD, "NW": cpb.RequestStatusCode_ACTIVE,
	"OC": cpb.RequestStatusCode_REVOKED, "OD": cpb.RequestStatusCode_REVOKED,
	"OH": cpb.RequestStatusCode_ON_HOLD, "OK": cpb.RequestStatusCode_ACTIVE,
	"PR": cpb.RequestStatusCode_ACTIVE, "PY": cpb.RequestStatusCode_ACTIVE,
	"RL": cpb.RequestStatusCode_ACTIVE, "RO": cpb.RequestStatusCode_ACTIVE,
	"RQ": cpb.RequestStatusCode_ACTIVE,
}

// priorities is TQ.6 / TQ1-9 (HL7 table 0485) to ServiceRequest.priority,
// the IG's ExtendedPriorityCodes ConceptMap; the rest (P, C, T, PRN, ...)
// have no FHIR code and are left out.
var priorities = map[string]cpb.RequestPriorityCode_Value{
	"S": cpb.RequestPriorityCode_STAT, "A": cpb.RequestPriorityCode_ASAP, "R": cpb.RequestPriorityCode_ROUTINE,
}

// ServiceRequest is o as a FHIR R4 ServiceRequest (v2-to-FHIR
// ORC[ServiceRequest], OBR[ServiceRequest]): placer and filler order
// numbers as identifiers (types PLAC and FILL, systems from sys for
// EI.2), status from ORC-5 else ORC-1, intent order, OBR-4 code with its
// alternate, priority, ORC-9 authoredOn for a new order (ORC-1 NW),
// ORC-12 requester; subject refs.Patient (required), encounter
// refs.Encounter. It is validated; an invalid one is an *Error naming the
// element and its v2 field.
func ServiceRequest(o *avro.Order, sys *Systems, refs Refs) (*srpb.ServiceRequest, error) {
	if refs.Patient == "" {
		return nil, &Error{Path: "ServiceRequest.subject", Source: "PID", Err: errors.New("no patient to refer to, and ServiceRequest.subject is required")}
	}
	out := &srpb.ServiceRequest{
		Identifier: orderIdentifiers(o, sys, false),
		Status:     &srpb.ServiceRequest_StatusCode{Value: orderStatus(o)},
		Intent:     &srpb.ServiceRequest_IntentCode{Value: cpb.RequestIntentCode_ORDER},
		Subject:    reference(refs.Patient),
		Encounter:  reference(refs.Encounter),
	}
	if o.ServiceCode != "" || o.ServiceText != "" || o.ServiceAltCode != "" {
		out.Code = concept(o.ServiceCode, o.ServiceText, o.ServiceSystem, o.ServiceAltCode, o.ServiceAltText, o.ServiceAltSystem)
	}
	if p, ok := priorities[strings.ToUpper(o.Priority)]; ok {
		out.Priority = &srpb.ServiceRequest_PriorityCode{Value: p}
	}
	if o.OrderedAt != "" && strings.EqualFold(o.Control, "NW") {
		dt, err := dateTime(o.OrderedAt)
		if err != nil {
			return nil, &Error{Path: "ServiceRequest.authoredOn", Source: "ORC-9", Err: err}
		}
		out.AuthoredOn = dt
	}
	if o.OrderingProvider != "" {
		out.Requester = &dpb.Reference{Identifier: &dpb.Identifier{Value: str(o.OrderingProvider)}}
	}
	if err := fhirvalidate.Validate(out); err != nil {
		return nil, &Error{Path: "ServiceRequest", Source: "ORC", Err: err}
	}
	return out, nil
}

// orderStatus is ORC-5 where the IG maps it, else ORC-1, else unknown.
func orderStatus(o *avro.Order) cpb.RequestStatusCode_Value {
	if s, ok := orderStatuses[strings.ToUpper(o.Status)]; ok {
		return s
	}
	if s, ok := orderControls[strings.ToUpper(o.Control)]; ok {
		return s
	}
	return cpb.RequestStatusCode_UNKNOWN
}

// orderIdentifiers are o's order numbers as Identifiers, typed PLAC and
// FILL in table 0203 as the IG's ORC-2/ORC-3 rows say: the placer's first,
// or the filler's first when fillerFirst (a DiagnosticReport, which the
// filler identifies).
func orderIdentifiers(o *avro.Order, sys *Systems, fillerFirst bool) []*dpb.Identifier {
	ids := []*dpb.Identifier{
		orderIdentifier(placerKey(o, sys), "PLAC"),
		orderIdentifier(fillerKey(o, sys), "FILL"),
	}
	if fillerFirst {
		ids[0], ids[1] = ids[1], ids[0]
	}
	var out []*dpb.Identifier
	for _, id := range ids {
		if id != nil {
			out = append(out, id)
		}
	}
	return out
}

func orderIdentifier(k key, typ string) *dpb.Identifier {
	if k.value == "" {
		return nil
	}
	id := &dpb.Identifier{Value: str(k.value), Type: &dpb.CodeableConcept{Coding: []*dpb.Coding{{
		System: &dpb.Uri{Value: v2IdentifierTypes}, Code: &dpb.Code{Value: typ},
	}}}}
	if k.system != "" {
		id.System = &dpb.Uri{Value: k.system}
	}
	return id
}

// placerKey and fillerKey are an order number with its system (a key
// with no system when the EI names no authority).
func placerKey(o *avro.Order, sys *Systems) key {
	return key{eiSystem(sys, o.PlacerNamespace, o.PlacerUniversalID, o.PlacerUniversalIDType), o.PlacerOrderNumber}
}

func fillerKey(o *avro.Order, sys *Systems) key {
	return key{eiSystem(sys, o.FillerNamespace, o.FillerUniversalID, o.FillerUniversalIDType), o.FillerOrderNumber}
}

// eiSystem is an EI's system, as the IG's EI[Identifier-System] leaves to
// the implementation: the namespace (EI.2) in sys's systems; without one,
// the universal id (EI.3) by its type (EI.4: ISO an OID, UUID, URI);
// else none.
func eiSystem(sys *Systems, namespace, universalID, universalIDType string) string {
	if namespace != "" {
		return sys.SearchURI(namespace)
	}
	if universalID == "" {
		return ""
	}
	switch strings.ToUpper(universalIDType) {
	case "ISO":
		return "urn:oid:" + universalID
	case "UUID":
		return "urn:uuid:" + strings.ToLower(universalID)
	case "URI", "URL":
		return universalID
	}
	return ""
}
