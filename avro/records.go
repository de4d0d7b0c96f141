// Package avro holds careflow's record schemas (the *.avsc files, embedded in
// the binary), their Go types, and the serde that writes them in the
// Confluent wire format (magic byte, 4-byte schema id, Avro binary).
//
// The Go types below are the contract between stages: a stage reads and
// writes these, never goavro's generic maps.
package avro

import "time"

// RawMessage is one inbound message exactly as a sender gave it, plus what
// ingest learned from its header. Topic: careflow.raw and careflow.valid.
type RawMessage struct {
	MessageID      string    `json:"message_id"`      // careflow's id, unique per receipt
	CorrelationID  string    `json:"correlation_id"`  // ties every record of one message's journey
	IdempotencyKey string    `json:"idempotency_key"` // sending app | facility | MSH-10; same for a resend
	Interface      string    `json:"source_interface"`
	Transport      string    `json:"transport"` // TransportMLLP or TransportHTTP
	ReceivedAt     time.Time `json:"received_at"`
	Payload        []byte    `json:"payload"` // the message bytes, unmodified
	// Header fields, copied so that analytics and routing need not reparse.
	MessageType        string `json:"message_type"`  // MSH-9.1
	TriggerEvent       string `json:"trigger_event"` // MSH-9.2
	ControlID          string `json:"control_id"`    // MSH-10
	Version            string `json:"version"`       // MSH-12
	SendingApplication string `json:"sending_application"`
	SendingFacility    string `json:"sending_facility"`
	PatientKey         string `json:"patient_key"` // the Kafka key: CX.1 ^ CX.4.1 of the PID-3 repetition the interface's identifier policy chooses (docs/identity.md); "" when none
	// Charset is the character set Payload is written in, as ingest
	// resolved it (MSH-18, else the interface's charset); "" means UTF-8.
	// Every other string here is already UTF-8.
	Charset string `json:"charset"`
	// Writer is who sent it, as ingest authenticated them: "token:NAME",
	// "jwt:SUBJECT", "certificate:SUBJECT" or "address:IP".
	Writer string `json:"writer"`
	// Related is, for a FHIR write, the current version of each resource
	// the payload references by id (Observation.subject = Patient/123),
	// as ingest held them when it accepted the write: a JSON array. The
	// payload itself stays as sent.
	Related []byte `json:"related"`
}

// Identifier is one patient identifier (HL7 CX).
type Identifier struct {
	Value              string `json:"value"`               // CX.1
	AssigningAuthority string `json:"assigning_authority"` // CX.4.1
	TypeCode           string `json:"type_code"`           // CX.5 (MR, NH, PI, ...)
	AssigningFacility  string `json:"assigning_facility"`  // CX.6.1
}

// Address is a patient address (HL7 XAD).
type Address struct {
	Street     string `json:"street"`
	Other      string `json:"other"`
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
	Type       string `json:"type"`
}

// Patient is who the event is about, as the source identifies them.
type Patient struct {
	Identifiers []Identifier `json:"identifiers"`
	FamilyName  string       `json:"family_name"`
	GivenNames  []string     `json:"given_names"`
	BirthDate   string       `json:"birth_date"` // HL7 DTM as sent (YYYY[MM[DD...]]); "" when absent
	Sex         string       `json:"sex"`        // PID-8 as sent
	Addresses   []Address    `json:"addresses"`
	// PriorIdentifiers are the identifiers being merged away (MRG-1, A40).
	PriorIdentifiers []Identifier `json:"prior_identifiers"`
	// Telecoms are the patient's phone numbers and e-mail addresses:
	// PID-13 (home) then PID-14 (business), one per repetition.
	Telecoms []Telecom `json:"telecoms"`
	// GP is the patient's primary care provider (PD1-4); zero when none.
	GP Practitioner `json:"gp"`
}

// Telecom is one phone number or e-mail address (HL7 XTN).
type Telecom struct {
	Value     string `json:"value"`     // XTN.1, else XTN.4 (an e-mail address)
	Use       string `json:"use"`       // XTN.2, HL7 table 0201 (PRN, WPN, NET, ...); a PID-14 repetition without one is WPN
	Equipment string `json:"equipment"` // XTN.3, HL7 table 0202 (PH, CP, Internet, ...)
}

// Practitioner is a doctor named by an HL7 XCN, such as the GP in PD1-4.
type Practitioner struct {
	ID         string `json:"id"`          // XCN.1
	FamilyName string `json:"family_name"` // XCN.2.1
	GivenName  string `json:"given_name"`  // XCN.3
}

// NextOfKin is one NK1: a person to contact about the patient.
type NextOfKin struct {
	FamilyName       string `json:"family_name"`       // NK1-2.1.1
	GivenName        string `json:"given_name"`        // NK1-2.2
	Relationship     string `json:"relationship"`      // NK1-3.1, HL7 table 0063 (SPO, MTH, ...)
	RelationshipText string `json:"relationship_text"` // NK1-3.2
	Phone            string `json:"phone"`             // NK1-5.1, the first repetition
}

// Allergy is one AL1.
type Allergy struct {
	Type         string `json:"type"`          // AL1-2.1, HL7 table 0127 (DA drug, FA food, ...)
	Code         string `json:"code"`          // AL1-3.1
	Text         string `json:"text"`          // AL1-3.2
	CodingSystem string `json:"coding_system"` // AL1-3.3
	Severity     string `json:"severity"`      // AL1-4.1, HL7 table 0128 (SV, MO, MI, U)
	Reaction     string `json:"reaction"`      // AL1-5, repetitions joined by "~"
	// The alternate coding (AL1-3.4 to .6): the local code when a code
	// map wrote the standard one in Code.
	AltCode         string `json:"alt_code"`
	AltText         string `json:"alt_text"`
	AltCodingSystem string `json:"alt_coding_system"`
}

// Encounter is the visit an event belongs to (PV1); nil when none.
type Encounter struct {
	VisitNumber      string `json:"visit_number"`        // PV1-19.1
	PatientClass     string `json:"patient_class"`       // PV1-2
	PointOfCare      string `json:"point_of_care"`       // PV1-3.1
	Room             string `json:"room"`                // PV1-3.2
	Bed              string `json:"bed"`                 // PV1-3.3
	Facility         string `json:"facility"`            // PV1-3.4
	AttendingDoctor  string `json:"attending_doctor"`    // PV1-7.1 (id)
	AdmitTime        string `json:"admit_time"`          // PV1-44, HL7 DTM as sent
	DischargeTime    string `json:"discharge_time"`      // PV1-45
	PriorPointOfCare string `json:"prior_point_of_care"` // PV1-6.1 (A02)
}

// Order is one ORC/OBR pair.
type Order struct {
	Control           string `json:"control"`             // ORC-1 (NW, CA, SC, RE, ...)
	PlacerOrderNumber string `json:"placer_order_number"` // ORC-2.1 (EI.1), else OBR-2.1
	FillerOrderNumber string `json:"filler_order_number"` // ORC-3.1, else OBR-3.1
	// The rest of each EI, from the same field as its number: the namespace
	// (the placer or filler application) and the universal id and its
	// type. A number is only unique within its namespace.
	PlacerNamespace       string `json:"placer_namespace"`         // EI.2
	PlacerUniversalID     string `json:"placer_universal_id"`      // EI.3
	PlacerUniversalIDType string `json:"placer_universal_id_type"` // EI.4
	FillerNamespace       string `json:"filler_namespace"`
	FillerUniversalID     string `json:"filler_universal_id"`
	FillerUniversalIDType string `json:"filler_universal_id_type"`
	Status                string `json:"status"`         // ORC-5
	ServiceCode           string `json:"service_code"`   // OBR-4.1
	ServiceText           string `json:"service_text"`   // OBR-4.2
	ServiceSystem         string `json:"service_system"` // OBR-4.3
	// The alternate coding of OBR-4 (CWE.4-6): the sender's own, or the
	// local code a code map replaced (docs/codes.md).
	ServiceAltCode   string `json:"service_alt_code"`   // OBR-4.4
	ServiceAltText   string `json:"service_alt_text"`   // OBR-4.5
	ServiceAltSystem string `json:"service_alt_system"` // OBR-4.6
	Priority         string `json:"priority"`           // OBR-27.6 / TQ1-9, as sent
	OrderedAt        string `json:"ordered_at"`         // ORC-9, HL7 DTM
	OrderingProvider string `json:"ordering_provider"`  // ORC-12.1 / OBR-16.1
	ResultStatus     string `json:"result_status"`      // OBR-25 (F, P, C, ...)
	ObservedAt       string `json:"observed_at"`        // OBR-7
}

// Observation is one OBX.
type Observation struct {
	SetID        string `json:"set_id"`
	OrderIndex   int    `json:"order_index"`   // index into Orders of the OBR it follows; -1 when none
	ValueType    string `json:"value_type"`    // OBX-2
	Code         string `json:"code"`          // OBX-3.1
	Text         string `json:"text"`          // OBX-3.2
	CodingSystem string `json:"coding_system"` // OBX-3.3
	// The alternate coding of OBX-3 (CWE.4-6): the sender's own, or the
	// local code a code map replaced (docs/codes.md).
	AltCode         string `json:"alt_code"`          // OBX-3.4
	AltText         string `json:"alt_text"`          // OBX-3.5
	AltCodingSystem string `json:"alt_coding_system"` // OBX-3.6
	Value           string `json:"value"`             // OBX-5, repetitions joined by "~" after unescaping
	Units           string `json:"units"`             // OBX-6.1
	UnitsText       string `json:"units_text"`        // OBX-6.2
	UnitsSystem     string `json:"units_system"`      // OBX-6.3 (UCUM, ...)
	UnitsAltCode    string `json:"units_alt_code"`    // OBX-6.4
	UnitsAltText    string `json:"units_alt_text"`    // OBX-6.5
	UnitsAltSystem  string `json:"units_alt_system"`  // OBX-6.6
	ReferenceRange  string `json:"reference_range"`
	AbnormalFlags   string `json:"abnormal_flags"`
	Status          string `json:"status"`      // OBX-11
	ObservedAt      string `json:"observed_at"` // OBX-14
}

// Provenance says where and when an event came from.
type Provenance struct {
	Interface            string    `json:"source_interface"`
	MessageID            string    `json:"message_id"`
	ControlID            string    `json:"control_id"`
	SendingApplication   string    `json:"sending_application"`
	SendingFacility      string    `json:"sending_facility"`
	ReceivingApplication string    `json:"receiving_application"`
	ReceivingFacility    string    `json:"receiving_facility"`
	Version              string    `json:"version"`
	EventTime            string    `json:"event_time"`   // EVN-2, else MSH-7, HL7 DTM as sent
	MessageTime          string    `json:"message_time"` // MSH-7
	IngestTime           time.Time `json:"ingest_time"`
	AcceptAckType        string    `json:"accept_ack_type"` // MSH-15
	AppAckType           string    `json:"app_ack_type"`    // MSH-16
	// CodeMaps are the code maps normalise read this event's codes
	// against, as name@version (docs/codes.md); empty when none applied.
	CodeMaps []string `json:"code_maps"`
	// ResourceType, ResourceID and ResourceVersion name the FHIR resource
	// an event was read from (connectors/fhir's Canonical): its type, its
	// logical id and meta.versionId. All "" for an HL7 v2 message.
	ResourceType    string `json:"resource_type"`
	ResourceID      string `json:"resource_id"`
	ResourceVersion string `json:"resource_version"`
}

// Acknowledgment is careflow's answer to a sender, carried by an event
// whose message type is ACK (an application acknowledgement) or an order
// response (a return notification). Rendered as MSA and ERR.
type Acknowledgment struct {
	Code      string     `json:"code"`       // MSA-1
	ControlID string     `json:"control_id"` // MSA-2
	Text      string     `json:"text"`       // MSA-3
	Errors    []AckError `json:"errors"`
}

// AckError is one ERR segment of an Acknowledgment.
type AckError struct {
	Code            string `json:"code"`             // ERR-3.1, HL7 table 0357
	ApplicationCode string `json:"application_code"` // ERR-5.1, careflow's code
	Location        string `json:"location"`         // an HL7 location such as PID-5 (ERR-2)
	Severity        string `json:"severity"`         // ERR-4
	Text            string `json:"text"`             // ERR-8
}

// ClinicalEvent is the canonical model every destination is rendered from.
// Topic: careflow.events and careflow.out.<destination>.
type ClinicalEvent struct {
	EventID        string        `json:"event_id"` // = the RawMessage's MessageID
	CorrelationID  string        `json:"correlation_id"`
	IdempotencyKey string        `json:"idempotency_key"`
	EventType      string        `json:"event_type"` // admit, transfer, discharge, register, update, cancel_admit, cancel_discharge, person_add, person_update, merge, order, result, order_response, acknowledgment
	MessageType    string        `json:"message_type"`
	TriggerEvent   string        `json:"trigger_event"`
	Patient        Patient       `json:"patient"`
	Encounter      *Encounter    `json:"encounter"`
	Orders         []Order       `json:"orders"`
	Observations   []Observation `json:"observations"`
	Provenance     Provenance    `json:"provenance"`
	// Acknowledgment is set only on careflow's own answers to a sender.
	Acknowledgment *Acknowledgment `json:"acknowledgment"`
	// NextOfKin and Allergies sit beside the patient rather than in it, so
	// that a destination whose fields name `patient` does not receive them
	// unless it names them too.
	NextOfKin []NextOfKin `json:"next_of_kin"` // NK1, one each
	Allergies []Allergy   `json:"allergies"`   // AL1, one each
}

// Outcome statuses.
const (
	StatusDelivered = "delivered" // destination accepted (AA/CA, HTTP 2xx)
	StatusRejected  = "rejected"  // business rejection (AE/CE, HTTP 4xx): not retried, dead-lettered
	StatusRetrying  = "retrying"  // transient failure of one attempt; another follows
	StatusInvalid   = "invalid"   // failed validation or normalisation
	StatusDuplicate = "duplicate" // a resend suppressed by idempotency key
	StatusUnrouted  = "unrouted"  // no route took the event
	StatusRouted    = "routed"    // route chose this destination
	StatusStale     = "stale"     // not routed: older than the update already applied for its patient (an Exception says why)
	StatusHeld      = "held"      // not routed: it would overwrite a better result (an Exception says why)
	StatusWarning   = "warning"   // handled as usual, but something in it had to be read another way (error_code says what)
)

// DeliveryOutcome records one attempt or result. Topic: careflow.outcomes.
type DeliveryOutcome struct {
	OutcomeID      string    `json:"outcome_id"` // deterministic: replays produce the same id
	MessageID      string    `json:"message_id"`
	CorrelationID  string    `json:"correlation_id"`
	IdempotencyKey string    `json:"idempotency_key"`
	Interface      string    `json:"source_interface"`
	Destination    string    `json:"destination"` // "" for outcomes before routing
	Stage          string    `json:"stage"`
	Status         string    `json:"status"`
	Attempt        int       `json:"attempt"`
	ControlID      string    `json:"control_id"`  // outbound MSH-10, stable across retries
	AckCode        string    `json:"ack_code"`    // AA AE AR CA CE CR, "" for HTTP
	HTTPStatus     int       `json:"http_status"` // 0 for MLLP
	ErrorCode      string    `json:"error_code"`
	ErrorLocation  string    `json:"error_location"`
	ErrorText      string    `json:"error_text"`
	MessageType    string    `json:"message_type"`
	TriggerEvent   string    `json:"trigger_event"`
	IngestTime     time.Time `json:"ingest_time"`
	At             time.Time `json:"at"`
	LatencyMillis  int64     `json:"latency_ms"` // this attempt's round trip; 0 when none
	// Routes and SLAMillis are set on routed outcomes: which routes chose
	// the destination, and the delivery target it is owed (the tightest of
	// those routes'), so that analytics need not evaluate routes again.
	Routes    []string `json:"routes"`
	SLAMillis int64    `json:"sla_ms"`
	// RemoteIDs are set on delivered outcomes by a destination that names
	// what it stored (a FHIR server's transaction-response locations,
	// "Patient/123/_history/1"), so that a delivered event can be found in
	// the destination, and a later update or delete can address it.
	RemoteIDs []string `json:"remote_ids"`
}

// Header is one Kafka record header kept in a dead letter.
type Header struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// DeadLetter wraps a record a stage could not process. Topic:
// careflow.dlq.<stage>.
type DeadLetter struct {
	Stage         string `json:"stage"`
	ErrorCode     string `json:"error_code"`
	ErrorLocation string `json:"error_location"` // HL7 location such as PID-7, "" when none
	ErrorText     string `json:"error_text"`     // careflow's words, never a sender's or destination's
	// ErrorDetail is a destination's or sender's own free text (ACK text,
	// an HTTP body), truncated to MaxErrorDetail bytes. It may name the
	// patient, so it is kept only here, in the access-controlled dead
	// letter: never in a header, an outcome, a metric or a log line.
	ErrorDetail       string    `json:"error_detail"`
	MessageID         string    `json:"message_id"`
	CorrelationID     string    `json:"correlation_id"`
	Interface         string    `json:"source_interface"`
	OriginalTopic     string    `json:"original_topic"` // "" when the message never reached a topic (ingest)
	OriginalPartition int32     `json:"original_partition"`
	OriginalOffset    int64     `json:"original_offset"`
	OriginalKey       []byte    `json:"original_key"`
	OriginalValue     []byte    `json:"original_value"`
	OriginalHeaders   []Header  `json:"original_headers"`
	At                time.Time `json:"at"`
}

// MaxErrorDetail bounds DeadLetter.ErrorDetail: enough for an ERR segment
// or an OperationOutcome's diagnostics, not a whole echoed message.
const MaxErrorDetail = 1024

// AuditEvent records who did what to careflow, shaped after FHIR R4
// AuditEvent so that it maps onto one without loss. Topic: careflow.audit.
type AuditEvent struct {
	AuditID        string    `json:"audit_id"`
	Recorded       time.Time `json:"recorded"`
	Type           string    `json:"type"`         // writer_refused, configuration_loaded, registry_write, dead_letter_replayed, ...
	Action         string    `json:"action"`       // C, R, U, D, E (AuditEvent.action)
	Outcome        string    `json:"outcome"`      // "0", "4", "8", "12" (AuditEvent.outcome)
	OutcomeDesc    string    `json:"outcome_desc"` // why, in careflow's words; never patient data
	AgentType      string    `json:"agent_type"`   // token, jwt, certificate, address, careflow, user
	AgentWho       string    `json:"agent_who"`
	AgentNetwork   string    `json:"agent_network"`
	SourceObserver string    `json:"source_observer"`
	EntityType     string    `json:"entity_type"` // interface, schema_subject, configuration, dead_letter
	EntityWhat     string    `json:"entity_what"`
	EntityDetail   string    `json:"entity_detail"`
	Count          int       `json:"count"` // occurrences folded into this record; at least 1
}

// AuditEvent.Action values (FHIR's AuditEventAction codes).
const (
	AuditCreate  = "C"
	AuditRead    = "R"
	AuditUpdate  = "U"
	AuditDelete  = "D"
	AuditExecute = "E"
)

// AuditEvent.Outcome values (FHIR's AuditEventOutcome codes).
const (
	AuditSuccess        = "0"
	AuditMinorFailure   = "4"
	AuditSeriousFailure = "8"
	AuditMajorFailure   = "12"
)

// Exception is something careflow will not do silently: deliver an update
// older than the one applied, take a result for no order. Topic:
// careflow.exceptions; docs/workflows.md lists the codes.
type Exception struct {
	ExceptionID   string    `json:"exception_id"`
	Code          string    `json:"code"`
	Stage         string    `json:"stage"`
	Interface     string    `json:"source_interface"`
	MessageID     string    `json:"message_id"`
	CorrelationID string    `json:"correlation_id"`
	ControlID     string    `json:"control_id"`
	PatientKey    string    `json:"patient_key"`
	PlacerOrder   string    `json:"placer_order"`
	FillerOrder   string    `json:"filler_order"`
	Reason        string    `json:"reason"` // never patient data
	Action        string    `json:"action"` // ActionNotDelivered, ...
	At            time.Time `json:"at"`
	Location      string    `json:"location"`      // PID-3[2], OBX-3, demographics.address; "" for the whole message
	CodedValue    string    `json:"coded_value"`   // unmapped_code: the local code
	CodingSystem  string    `json:"coding_system"` // unmapped_code: its system as sent
	ReviewID      string    `json:"review_id"`     // set when the message is held for review
}

// Exception codes, and what careflow did with the message.
const (
	ExceptionStaleUpdate = "stale_update" // an ADT update older than the patient's last applied one

	ActionNotDelivered = "not_delivered"
	ActionDelivered    = "delivered"
	ActionHeld         = "held" // held for review (careflow.review); review_id names the item
)

// OrderTransition is one order changing state. Topic: careflow.orders;
// docs/workflows.md draws the lifecycle.
type OrderTransition struct {
	TransitionID  string    `json:"transition_id"`
	PlacerOrder   string    `json:"placer_order"` // number^namespace
	FillerOrder   string    `json:"filler_order"`
	PatientKey    string    `json:"patient_key"`
	FromState     string    `json:"from_state"`
	State         string    `json:"state"`
	MessageID     string    `json:"message_id"`
	CorrelationID string    `json:"correlation_id"` // the order's journey
	Interface     string    `json:"source_interface"`
	MessageType   string    `json:"message_type"`
	TriggerEvent  string    `json:"trigger_event"`
	At            time.Time `json:"at"`
}

// Review statuses.
const (
	ReviewPending  = "pending"
	ReviewApproved = "approved"
	ReviewRejected = "rejected"
)

// Review is a message held for a person, and the decision on it. Topic:
// careflow.review, compacted by ReviewID.
type Review struct {
	ReviewID       string            `json:"review_id"`
	Status         string            `json:"status"`
	Code           string            `json:"code"`
	Stage          string            `json:"stage"`
	Reason         string            `json:"reason"` // never patient data
	Location       string            `json:"location"`
	Interface      string            `json:"source_interface"`
	MessageID      string            `json:"message_id"`
	CorrelationID  string            `json:"correlation_id"`
	ControlID      string            `json:"control_id"`
	MessageType    string            `json:"message_type"`
	PatientKey     string            `json:"patient_key"`
	HeldAt         time.Time         `json:"held_at"`
	DecidedBy      string            `json:"decided_by"`
	DecidedAt      time.Time         `json:"decided_at"`
	DecisionReason string            `json:"decision_reason"`
	HeldTopic      string            `json:"held_topic"`
	HeldKey        []byte            `json:"-"`
	HeldValue      []byte            `json:"-"`
	HeldHeaders    map[string]string `json:"-"`
}
