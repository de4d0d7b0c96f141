package normalise

import (
	"errors"
	"fmt"
	"strings"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
)

// Error codes of the messages this stage cannot map.
const (
	CodeUnmappedType = "normalise.unmapped_type"
	CodeNoPatient    = "normalise.no_patient"
)

// Event types of avro.ClinicalEvent.EventType.
const (
	EventAdmit           = "admit"
	EventTransfer        = "transfer"
	EventDischarge       = "discharge"
	EventRegister        = "register"
	EventUpdate          = "update"
	EventCancelAdmit     = "cancel_admit"
	EventCancelDischarge = "cancel_discharge"
	EventPersonAdd       = "person_add"
	EventPersonUpdate    = "person_update"
	EventMerge           = "merge"
	EventLink            = "link"   // A24: two records of one person, kept apart
	EventUnlink          = "unlink" // A37
	EventOrder           = "order"
	EventResult          = "result"
	// EventOrderResponse is a filler's answer to an order (ORC-1 OK,
	// UA, ...), which moves the order's lifecycle.
	EventOrderResponse = "order_response"
	// EventAcknowledgment is careflow's own answer to a sender (route's
	// application acknowledgements and return notifications); no inbound
	// message maps to it.
	EventAcknowledgment = "acknowledgment"
)

// eventTypes maps "TYPE^TRIGGER" to the canonical event type. Anything else
// is not mapped: an ADT^A05 (pre-admit), say, means something the canonical
// model has no event for, and guessing would mislead every destination.
var eventTypes = map[string]string{
	"ADT^A01": EventAdmit,
	"ADT^A02": EventTransfer,
	"ADT^A03": EventDischarge,
	"ADT^A04": EventRegister,
	"ADT^A08": EventUpdate,
	"ADT^A11": EventCancelAdmit,
	"ADT^A13": EventCancelDischarge,
	"ADT^A28": EventPersonAdd,
	"ADT^A31": EventPersonUpdate,
	"ADT^A40": EventMerge, // merge patient identifier list
	"ADT^A34": EventMerge, // merge patient information, patient id only
	"ADT^A36": EventMerge, // ... patient id and account number
	"ADT^A39": EventMerge, // merge person (patient id)
	"ADT^A24": EventLink,
	"ADT^A37": EventUnlink,
	"ORM^O01": EventOrder,
	"OML^O21": EventOrder,
	"ORU^R01": EventResult,
	"ORR^O02": EventOrderResponse,
	"ORL^O22": EventOrderResponse,
}

// EventTypeOf returns the canonical event type of an HL7 message type and
// trigger, or "" when the pair is not mapped.
func EventTypeOf(messageType, trigger string) string {
	return eventTypes[messageType+"^"+trigger]
}

// Map turns a parsed HL7 v2 message into the canonical ClinicalEvent. raw
// supplies careflow's identity for it (ids, interface, ingest time). Errors
// are stages.Permanent with code CodeUnmappedType or CodeNoPatient; they
// name message types and HL7 locations, never patient data.
//
// Map tolerates what real feeds leave out: any optional segment or field
// may be missing and maps to "" (or a nil Encounter); HL7's explicit null
// ("") maps to "" too. docs/canonical-model.md lists where every field
// comes from.
func Map(m *hl7v2.Message, raw *avro.RawMessage) (*avro.ClinicalEvent, error) {
	if m == nil || raw == nil {
		return nil, errors.New("normalise: Map needs a message and its raw record")
	}
	h := m.Header()
	et := EventTypeOf(h.MessageType, h.TriggerEvent)
	if et == "" {
		return nil, stages.Permanent(CodeUnmappedType, "MSH-9", fmt.Errorf("normalise: interface %s: %s^%s has no canonical mapping", raw.Interface, h.MessageType, h.TriggerEvent))
	}
	ev := &avro.ClinicalEvent{
		EventID:        raw.MessageID,
		CorrelationID:  raw.CorrelationID,
		IdempotencyKey: raw.IdempotencyKey,
		EventType:      et,
		MessageType:    h.MessageType,
		TriggerEvent:   h.TriggerEvent,
	}
	p, missing := mapPatient(m, et)
	if missing != "" {
		return nil, stages.Permanent(CodeNoPatient, missing, fmt.Errorf("normalise: interface %s: %s^%s has no patient identifier at %s", raw.Interface, h.MessageType, h.TriggerEvent, missing))
	}
	ev.Patient = p
	if pv1, ok := m.Segment("PV1"); ok {
		ev.Encounter = mapEncounter(pv1)
	}
	ev.NextOfKin, ev.Allergies = mapNextOfKin(m), mapAllergies(m)
	ev.Orders, ev.Observations = mapOrders(m)
	ev.Provenance = mapProvenance(m, h, raw)
	ev.Acknowledgment = mapAnswer(m)
	return ev, nil
}

// mapAnswer reads the MSA and ERR of a response (ORR^O02, ORL^O22): the
// filler's own account of what it did with an order, which careflow
// carries back to the placer when the filler rejects it. nil when the
// message has no readable MSA.
func mapAnswer(m *hl7v2.Message) *avro.Acknowledgment {
	a, err := hl7v2.ReadAnswer(m)
	if err != nil {
		return nil
	}
	out := &avro.Acknowledgment{Code: string(a.Code), ControlID: a.ControlID, Text: a.Text}
	for _, e := range a.Errors {
		out.Errors = append(out.Errors, avro.AckError{Code: e.Code, Location: e.Location, Severity: e.Severity, Text: e.Text})
	}
	return out
}

// mapEncounter reads PV1. A PV1 that is present but empty still yields an
// Encounter: the sender said there is a visit, even if it told us nothing.
func mapEncounter(pv1 hl7v2.Segment) *avro.Encounter {
	loc := pv1.Field(3)
	return &avro.Encounter{
		VisitNumber:      str(pv1.Field(19).Component(1)),
		PatientClass:     str(pv1.Field(2).Component(1)),
		PointOfCare:      str(loc.Component(1)),
		Room:             str(loc.Component(2)),
		Bed:              str(loc.Component(3)),
		Facility:         str(loc.Component(4).Sub(1)),
		AttendingDoctor:  str(pv1.Field(7).Component(1)),
		AdmitTime:        str(pv1.Field(44).Component(1)),
		DischargeTime:    str(pv1.Field(45).Component(1)),
		PriorPointOfCare: str(pv1.Field(6).Component(1)),
	}
}

// mapProvenance reads MSH and EVN. The HD fields (MSH-3 to MSH-6) keep only
// their namespace id (HD.1), the name routes and analysts compare on.
func mapProvenance(m *hl7v2.Message, h hl7v2.Header, raw *avro.RawMessage) avro.Provenance {
	msh, _ := m.SegmentAt(1)
	p := avro.Provenance{
		Interface:            raw.Interface,
		MessageID:            raw.MessageID,
		ControlID:            h.ControlID,
		SendingApplication:   str(msh.Field(3).Component(1)),
		SendingFacility:      str(msh.Field(4).Component(1)),
		ReceivingApplication: str(msh.Field(5).Component(1)),
		ReceivingFacility:    str(msh.Field(6).Component(1)),
		Version:              h.Version,
		MessageTime:          h.DateTime,
		EventTime:            h.DateTime,
		IngestTime:           raw.ReceivedAt,
		AcceptAckType:        strings.TrimSpace(h.AcceptAckType),
		AppAckType:           strings.TrimSpace(h.AppAckType),
	}
	if evn, ok := m.Segment("EVN"); ok {
		if t := str(evn.Field(2).Component(1)); t != "" {
			p.EventTime = t
		}
	}
	return p
}

// str returns f unescaped, with HL7's explicit null ("") as "": the
// canonical model has no way to say "delete this value", and passing two
// quote characters on as a name or code would be wrong everywhere.
func str(f hl7v2.Field) string {
	if f.IsNull() {
		return ""
	}
	return f.String()
}
