// This file builds the `event` variable route conditions see: the
// ClinicalEvent as nested maps keyed by its json field names, written out
// field by field because a JSON round trip per event would cost more than
// evaluating every route.
package route

import "careflow/avro"

// Activation returns the bindings for a condition: {"event": ev as a map}.
// Lists are []any and records map[string]any, keyed by the json names in
// avro/records.go; a missing encounter is nil (CEL null). The map is built
// fresh for every call and callers may keep it.
func Activation(ev *avro.ClinicalEvent) map[string]any {
	return map[string]any{Variable: eventMap(ev)}
}

func eventMap(ev *avro.ClinicalEvent) map[string]any {
	var enc any // a nil *Encounter must become an untyped nil, i.e. CEL null
	if ev.Encounter != nil {
		enc = encounterMap(ev.Encounter)
	}
	orders := make([]any, len(ev.Orders))
	for i := range ev.Orders {
		orders[i] = orderMap(&ev.Orders[i])
	}
	obs := make([]any, len(ev.Observations))
	for i := range ev.Observations {
		obs[i] = observationMap(&ev.Observations[i])
	}
	return map[string]any{
		"event_id":        ev.EventID,
		"correlation_id":  ev.CorrelationID,
		"idempotency_key": ev.IdempotencyKey,
		"event_type":      ev.EventType,
		"message_type":    ev.MessageType,
		"trigger_event":   ev.TriggerEvent,
		"patient":         patientMap(&ev.Patient),
		"encounter":       enc,
		"orders":          orders,
		"observations":    obs,
		"provenance":      provenanceMap(&ev.Provenance),
	}
}

func patientMap(p *avro.Patient) map[string]any {
	given := make([]any, len(p.GivenNames))
	for i, g := range p.GivenNames {
		given[i] = g
	}
	addrs := make([]any, len(p.Addresses))
	for i := range p.Addresses {
		a := &p.Addresses[i]
		addrs[i] = map[string]any{
			"street":      a.Street,
			"other":       a.Other,
			"city":        a.City,
			"state":       a.State,
			"postal_code": a.PostalCode,
			"country":     a.Country,
			"type":        a.Type,
		}
	}
	return map[string]any{
		"identifiers":       identifierList(p.Identifiers),
		"family_name":       p.FamilyName,
		"given_names":       given,
		"birth_date":        p.BirthDate,
		"sex":               p.Sex,
		"addresses":         addrs,
		"prior_identifiers": identifierList(p.PriorIdentifiers),
	}
}

func identifierList(ids []avro.Identifier) []any {
	out := make([]any, len(ids))
	for i := range ids {
		out[i] = map[string]any{
			"value":               ids[i].Value,
			"assigning_authority": ids[i].AssigningAuthority,
			"type_code":           ids[i].TypeCode,
			"assigning_facility":  ids[i].AssigningFacility,
		}
	}
	return out
}

func encounterMap(e *avro.Encounter) map[string]any {
	return map[string]any{
		"visit_number":        e.VisitNumber,
		"patient_class":       e.PatientClass,
		"point_of_care":       e.PointOfCare,
		"room":                e.Room,
		"bed":                 e.Bed,
		"facility":            e.Facility,
		"attending_doctor":    e.AttendingDoctor,
		"admit_time":          e.AdmitTime,
		"discharge_time":      e.DischargeTime,
		"prior_point_of_care": e.PriorPointOfCare,
	}
}

func orderMap(o *avro.Order) map[string]any {
	return map[string]any{
		"control":             o.Control,
		"placer_order_number": o.PlacerOrderNumber,
		"filler_order_number": o.FillerOrderNumber,
		"status":              o.Status,
		"service_code":        o.ServiceCode,
		"service_text":        o.ServiceText,
		"service_system":      o.ServiceSystem,
		"priority":            o.Priority,
		"ordered_at":          o.OrderedAt,
		"ordering_provider":   o.OrderingProvider,
		"result_status":       o.ResultStatus,
		"observed_at":         o.ObservedAt,
	}
}

func observationMap(o *avro.Observation) map[string]any {
	return map[string]any{
		"set_id":          o.SetID,
		"order_index":     int64(o.OrderIndex),
		"value_type":      o.ValueType,
		"code":            o.Code,
		"text":            o.Text,
		"coding_system":   o.CodingSystem,
		"value":           o.Value,
		"units":           o.Units,
		"reference_range": o.ReferenceRange,
		"abnormal_flags":  o.AbnormalFlags,
		"status":          o.Status,
		"observed_at":     o.ObservedAt,
	}
}

func provenanceMap(p *avro.Provenance) map[string]any {
	return map[string]any{
		"source_interface":      p.Interface,
		"message_id":            p.MessageID,
		"control_id":            p.ControlID,
		"sending_application":   p.SendingApplication,
		"sending_facility":      p.SendingFacility,
		"receiving_application": p.ReceivingApplication,
		"receiving_facility":    p.ReceivingFacility,
		"version":               p.Version,
		"event_time":            p.EventTime,
		"message_time":          p.MessageTime,
		"ingest_time":           p.IngestTime, // a CEL timestamp
	}
}
