// This file converts a ClinicalEvent and its nested records to and from
// goavro's native form; see native.go for the rules.

package avro

const (
	nameEncounter      = "careflow.Encounter"
	nameAcknowledgment = "careflow.Acknowledgment"
)

func eventToNative(e *ClinicalEvent) map[string]any {
	var encounter any // nil encodes the "null" branch
	if e.Encounter != nil {
		encounter = union(nameEncounter, encounterToNative(e.Encounter))
	}
	orders := make([]any, len(e.Orders))
	for i := range e.Orders {
		orders[i] = orderToNative(&e.Orders[i])
	}
	observations := make([]any, len(e.Observations))
	for i := range e.Observations {
		observations[i] = observationToNative(&e.Observations[i])
	}
	var ack any
	if e.Acknowledgment != nil {
		ack = union(nameAcknowledgment, ackToNative(e.Acknowledgment))
	}
	nextOfKin := make([]any, len(e.NextOfKin))
	for i, k := range e.NextOfKin {
		nextOfKin[i] = map[string]any{"family_name": k.FamilyName, "given_name": k.GivenName,
			"relationship": k.Relationship, "relationship_text": k.RelationshipText, "phone": k.Phone}
	}
	allergies := make([]any, len(e.Allergies))
	for i, a := range e.Allergies {
		allergies[i] = map[string]any{"type": a.Type, "code": a.Code, "text": a.Text,
			"coding_system": a.CodingSystem, "severity": a.Severity, "reaction": a.Reaction,
			"alt_code": a.AltCode, "alt_text": a.AltText, "alt_coding_system": a.AltCodingSystem}
	}
	return map[string]any{
		"next_of_kin":     nextOfKin,
		"allergies":       allergies,
		"acknowledgment":  ack,
		"event_id":        e.EventID,
		"correlation_id":  e.CorrelationID,
		"idempotency_key": e.IdempotencyKey,
		"event_type":      e.EventType,
		"message_type":    e.MessageType,
		"trigger_event":   e.TriggerEvent,
		"patient":         patientToNative(&e.Patient),
		"encounter":       encounter,
		"orders":          orders,
		"observations":    observations,
		"provenance":      provenanceToNative(&e.Provenance),
	}
}

func eventFromNative(m map[string]any) ClinicalEvent {
	e := ClinicalEvent{
		EventID:        str(m, "event_id"),
		CorrelationID:  str(m, "correlation_id"),
		IdempotencyKey: str(m, "idempotency_key"),
		EventType:      str(m, "event_type"),
		MessageType:    str(m, "message_type"),
		TriggerEvent:   str(m, "trigger_event"),
		Patient:        patientFromNative(recordOf(m, "patient")),
		Provenance:     provenanceFromNative(recordOf(m, "provenance")),
	}
	if r := unionRecordOf(m, "encounter"); r != nil {
		enc := encounterFromNative(r)
		e.Encounter = &enc
	}
	if r := unionRecordOf(m, "acknowledgment"); r != nil {
		a := ackFromNative(r)
		e.Acknowledgment = &a
	}
	if a := arrayOf(m, "next_of_kin"); len(a) > 0 {
		e.NextOfKin = make([]NextOfKin, len(a))
		for i, v := range a {
			r, _ := v.(map[string]any)
			e.NextOfKin[i] = NextOfKin{FamilyName: str(r, "family_name"), GivenName: str(r, "given_name"),
				Relationship: str(r, "relationship"), RelationshipText: str(r, "relationship_text"), Phone: str(r, "phone")}
		}
	}
	if a := arrayOf(m, "allergies"); len(a) > 0 {
		e.Allergies = make([]Allergy, len(a))
		for i, v := range a {
			r, _ := v.(map[string]any)
			e.Allergies[i] = Allergy{Type: str(r, "type"), Code: str(r, "code"), Text: str(r, "text"),
				CodingSystem: str(r, "coding_system"), Severity: str(r, "severity"), Reaction: str(r, "reaction"),
				AltCode: str(r, "alt_code"), AltText: str(r, "alt_text"), AltCodingSystem: str(r, "alt_coding_system")}
		}
	}
	if a := arrayOf(m, "orders"); len(a) > 0 {
		e.Orders = make([]Order, len(a))
		for i, v := range a {
			r, _ := v.(map[string]any)
			e.Orders[i] = orderFromNative(r)
		}
	}
	if a := arrayOf(m, "observations"); len(a) > 0 {
		e.Observations = make([]Observation, len(a))
		for i, v := range a {
			r, _ := v.(map[string]any)
			e.Observations[i] = observationFromNative(r)
		}
	}
	return e
}

func patientToNative(p *Patient) map[string]any {
	addresses := make([]any, len(p.Addresses))
	for i := range p.Addresses {
		addresses[i] = addressToNative(&p.Addresses[i])
	}
	telecoms := make([]any, len(p.Telecoms))
	for i, t := range p.Telecoms {
		telecoms[i] = map[string]any{"value": t.Value, "use": t.Use, "equipment": t.Equipment}
	}
	return map[string]any{
		"identifiers":       identifiersToNative(p.Identifiers),
		"family_name":       p.FamilyName,
		"given_names":       stringsToNative(p.GivenNames),
		"birth_date":        p.BirthDate,
		"sex":               p.Sex,
		"addresses":         addresses,
		"prior_identifiers": identifiersToNative(p.PriorIdentifiers),
		"telecoms":          telecoms,
		"gp":                map[string]any{"id": p.GP.ID, "family_name": p.GP.FamilyName, "given_name": p.GP.GivenName},
	}
}

func patientFromNative(m map[string]any) Patient {
	p := Patient{
		Identifiers:      identifiersFromNative(arrayOf(m, "identifiers")),
		FamilyName:       str(m, "family_name"),
		GivenNames:       stringsOf(m, "given_names"),
		BirthDate:        str(m, "birth_date"),
		Sex:              str(m, "sex"),
		PriorIdentifiers: identifiersFromNative(arrayOf(m, "prior_identifiers")),
	}
	gp := recordOf(m, "gp")
	p.GP = Practitioner{ID: str(gp, "id"), FamilyName: str(gp, "family_name"), GivenName: str(gp, "given_name")}
	if a := arrayOf(m, "telecoms"); len(a) > 0 {
		p.Telecoms = make([]Telecom, len(a))
		for i, v := range a {
			r, _ := v.(map[string]any)
			p.Telecoms[i] = Telecom{Value: str(r, "value"), Use: str(r, "use"), Equipment: str(r, "equipment")}
		}
	}
	if a := arrayOf(m, "addresses"); len(a) > 0 {
		p.Addresses = make([]Address, len(a))
		for i, v := range a {
			r, _ := v.(map[string]any)
			p.Addresses[i] = Address{
				Street:     str(r, "street"),
				Other:      str(r, "other"),
				City:       str(r, "city"),
				State:      str(r, "state"),
				PostalCode: str(r, "postal_code"),
				Country:    str(r, "country"),
				Type:       str(r, "type"),
			}
		}
	}
	return p
}

func addressToNative(a *Address) map[string]any {
	return map[string]any{
		"street":      a.Street,
		"other":       a.Other,
		"city":        a.City,
		"state":       a.State,
		"postal_code": a.PostalCode,
		"country":     a.Country,
		"type":        a.Type,
	}
}

func identifiersToNative(ids []Identifier) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = map[string]any{
			"value":               id.Value,
			"assigning_authority": id.AssigningAuthority,
			"type_code":           id.TypeCode,
			"assigning_facility":  id.AssigningFacility,
		}
	}
	return out
}

func identifiersFromNative(a []any) []Identifier {
	if len(a) == 0 {
		return nil
	}
	out := make([]Identifier, len(a))
	for i, v := range a {
		r, _ := v.(map[string]any)
		out[i] = Identifier{
			Value:              str(r, "value"),
			AssigningAuthority: str(r, "assigning_authority"),
			TypeCode:           str(r, "type_code"),
			AssigningFacility:  str(r, "assigning_facility"),
		}
	}
	return out
}

func encounterToNative(e *Encounter) map[string]any {
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

func encounterFromNative(m map[string]any) Encounter {
	return Encounter{
		VisitNumber:      str(m, "visit_number"),
		PatientClass:     str(m, "patient_class"),
		PointOfCare:      str(m, "point_of_care"),
		Room:             str(m, "room"),
		Bed:              str(m, "bed"),
		Facility:         str(m, "facility"),
		AttendingDoctor:  str(m, "attending_doctor"),
		AdmitTime:        str(m, "admit_time"),
		DischargeTime:    str(m, "discharge_time"),
		PriorPointOfCare: str(m, "prior_point_of_care"),
	}
}

func orderToNative(o *Order) map[string]any {
	return map[string]any{
		"control":                  o.Control,
		"placer_order_number":      o.PlacerOrderNumber,
		"placer_namespace":         o.PlacerNamespace,
		"placer_universal_id":      o.PlacerUniversalID,
		"placer_universal_id_type": o.PlacerUniversalIDType,
		"filler_namespace":         o.FillerNamespace,
		"filler_universal_id":      o.FillerUniversalID,
		"filler_universal_id_type": o.FillerUniversalIDType,
		"filler_order_number":      o.FillerOrderNumber,
		"status":                   o.Status,
		"service_code":             o.ServiceCode,
		"service_text":             o.ServiceText,
		"service_system":           o.ServiceSystem,
		"service_alt_code":         o.ServiceAltCode,
		"service_alt_text":         o.ServiceAltText,
		"service_alt_system":       o.ServiceAltSystem,
		"priority":                 o.Priority,
		"ordered_at":               o.OrderedAt,
		"ordering_provider":        o.OrderingProvider,
		"result_status":            o.ResultStatus,
		"observed_at":              o.ObservedAt,
	}
}

func orderFromNative(m map[string]any) Order {
	return Order{
		Control:               str(m, "control"),
		PlacerOrderNumber:     str(m, "placer_order_number"),
		PlacerNamespace:       str(m, "placer_namespace"),
		PlacerUniversalID:     str(m, "placer_universal_id"),
		PlacerUniversalIDType: str(m, "placer_universal_id_type"),
		FillerNamespace:       str(m, "filler_namespace"),
		FillerUniversalID:     str(m, "filler_universal_id"),
		FillerUniversalIDType: str(m, "filler_universal_id_type"),
		FillerOrderNumber:     str(m, "filler_order_number"),
		Status:                str(m, "status"),
		ServiceCode:           str(m, "service_code"),
		ServiceText:           str(m, "service_text"),
		ServiceSystem:         str(m, "service_system"),
		ServiceAltCode:        str(m, "service_alt_code"),
		ServiceAltText:        str(m, "service_alt_text"),
		ServiceAltSystem:      str(m, "service_alt_system"),
		Priority:              str(m, "priority"),
		OrderedAt:             str(m, "ordered_at"),
		OrderingProvider:      str(m, "ordering_provider"),
		ResultStatus:          str(m, "result_status"),
		ObservedAt:            str(m, "observed_at"),
	}
}

func observationToNative(o *Observation) map[string]any {
	return map[string]any{
		"set_id":            o.SetID,
		"order_index":       int32(o.OrderIndex),
		"value_type":        o.ValueType,
		"code":              o.Code,
		"text":              o.Text,
		"coding_system":     o.CodingSystem,
		"alt_code":          o.AltCode,
		"alt_text":          o.AltText,
		"alt_coding_system": o.AltCodingSystem,
		"value":             o.Value,
		"units":             o.Units,
		"units_text":        o.UnitsText,
		"units_system":      o.UnitsSystem,
		"units_alt_code":    o.UnitsAltCode,
		"units_alt_text":    o.UnitsAltText,
		"units_alt_system":  o.UnitsAltSystem,
		"reference_range":   o.ReferenceRange,
		"abnormal_flags":    o.AbnormalFlags,
		"status":            o.Status,
		"observed_at":       o.ObservedAt,
	}
}

func observationFromNative(m map[string]any) Observation {
	return Observation{
		SetID:           str(m, "set_id"),
		OrderIndex:      int(int32Of(m, "order_index", -1)), // -1 is the schema default: no OBR
		ValueType:       str(m, "value_type"),
		Code:            str(m, "code"),
		Text:            str(m, "text"),
		CodingSystem:    str(m, "coding_system"),
		AltCode:         str(m, "alt_code"),
		AltText:         str(m, "alt_text"),
		AltCodingSystem: str(m, "alt_coding_system"),
		Value:           str(m, "value"),
		Units:           str(m, "units"),
		UnitsText:       str(m, "units_text"),
		UnitsSystem:     str(m, "units_system"),
		UnitsAltCode:    str(m, "units_alt_code"),
		UnitsAltText:    str(m, "units_alt_text"),
		UnitsAltSystem:  str(m, "units_alt_system"),
		ReferenceRange:  str(m, "reference_range"),
		AbnormalFlags:   str(m, "abnormal_flags"),
		Status:          str(m, "status"),
		ObservedAt:      str(m, "observed_at"),
	}
}

func provenanceToNative(p *Provenance) map[string]any {
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
		"ingest_time":           millis(p.IngestTime),
		"accept_ack_type":       p.AcceptAckType,
		"app_ack_type":          p.AppAckType,
		"code_maps":             stringsToNative(p.CodeMaps),
		"resource_type":         p.ResourceType,
		"resource_id":           p.ResourceID,
		"resource_version":      p.ResourceVersion,
	}
}

func provenanceFromNative(m map[string]any) Provenance {
	return Provenance{
		Interface:            str(m, "source_interface"),
		MessageID:            str(m, "message_id"),
		ControlID:            str(m, "control_id"),
		SendingApplication:   str(m, "sending_application"),
		SendingFacility:      str(m, "sending_facility"),
		ReceivingApplication: str(m, "receiving_application"),
		ReceivingFacility:    str(m, "receiving_facility"),
		Version:              str(m, "version"),
		EventTime:            str(m, "event_time"),
		MessageTime:          str(m, "message_time"),
		IngestTime:           timeOf(m, "ingest_time"),
		AcceptAckType:        str(m, "accept_ack_type"),
		AppAckType:           str(m, "app_ack_type"),
		CodeMaps:             stringsOf(m, "code_maps"),
		ResourceType:         str(m, "resource_type"),
		ResourceID:           str(m, "resource_id"),
		ResourceVersion:      str(m, "resource_version"),
	}
}

func ackToNative(a *Acknowledgment) map[string]any {
	errs := make([]any, len(a.Errors))
	for i, x := range a.Errors {
		errs[i] = map[string]any{"code": x.Code, "application_code": x.ApplicationCode, "location": x.Location, "severity": x.Severity, "text": x.Text}
	}
	return map[string]any{"code": a.Code, "control_id": a.ControlID, "text": a.Text, "errors": errs}
}

func ackFromNative(m map[string]any) Acknowledgment {
	a := Acknowledgment{Code: str(m, "code"), ControlID: str(m, "control_id"), Text: str(m, "text")}
	for _, v := range arrayOf(m, "errors") {
		r, _ := v.(map[string]any)
		a.Errors = append(a.Errors, AckError{Code: str(r, "code"), ApplicationCode: str(r, "application_code"),
			Location: str(r, "location"), Severity: str(r, "severity"), Text: str(r, "text")})
	}
	return a
}
