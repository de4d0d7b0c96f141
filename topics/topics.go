// Package topics names every Kafka topic and record header careflow uses, so
// that stages, tools and docs agree on one spelling. Nothing else in the
// project writes a topic or header name as a string literal.
package topics

import "strings"

// Topic names. The "careflow." prefix keeps careflow's topics together on a
// shared cluster.
const (
	Raw      = "careflow.raw"      // RawMessage: every accepted inbound message, as received
	Valid    = "careflow.valid"    // RawMessage: messages that passed conformance and dedup
	Events   = "careflow.events"   // ClinicalEvent: the canonical model
	Outcomes = "careflow.outcomes" // DeliveryOutcome: every attempt and final result
	Audit    = "careflow.audit"    // AuditEvent: who did what to careflow (refused writers, configuration, registry writes)
	// Exceptions holds Exception records: what careflow would otherwise
	// have had to overwrite or drop silently (a stale update, a result
	// for no order), each with its code and reason.
	Exceptions = "careflow.exceptions"
	// PatientState is route's changelog (compacted, JSON, internal): per
	// patient key, the event time of the last ADT applied, so that an
	// older update is not delivered over a newer one.
	PatientState = statePrefix + "patients"
	// Orders holds OrderTransition records: every order changing state.
	Orders = "careflow.orders"
	// OrderState is route's changelog of the order lifecycle (compacted,
	// JSON, internal): per patient key, that patient's orders and their
	// states (lifecycle.Patient).
	OrderState = statePrefix + "orders"
	// OrderClaims holds route's claim of each order number it sees placed
	// (JSON, internal), keyed by the number (number^namespace) rather
	// than the patient, so that one copy sees every claim of a number.
	OrderClaims = "careflow.order-claims"
	// OrderIndex is the order index's changelog (compacted, JSON,
	// internal): per order number, the patient that placed it first.
	OrderIndex = statePrefix + "order-index"
	// Patients is the patient index (compacted, JSON): every identifier
	// careflow has seen and the enterprise patient key it belongs to, and
	// every patient's identifiers, merges and links (stages/patientindex).
	// Not under careflow.state.: tools and people read it.
	Patients = "careflow.patients"
	// Review holds Review records (compacted by review id): messages held
	// for a person to decide on, and each decision (stages/review).
	Review = "careflow.review"
	// FHIR holds the resources written to careflow's FHIR interfaces
	// (compacted, JSON, keyed interface/Type/id): each one's current
	// version and identifiers, so that updates, conditional operations
	// and If-Match survive a restart (stages/ingest).
	FHIR = "careflow.fhir"
	// Replays records each dead letter put back on its original topic
	// (compacted, JSON, keyed by the letter's id "stage:partition:offset"):
	// every replay of it, who and why, so that a letter is replayed once
	// unless someone asks again (stages/replay).
	Replays = "careflow.replays"

	outboundPrefix = "careflow.out."
	statePrefix    = "careflow.state."
	dlqPrefix      = "careflow.dlq."
)

// Stage names; each stage has a dead-letter topic named after it.
const (
	StageIngest    = "ingest"
	StageValidate  = "validate"
	StageNormalise = "normalise"
	StageRoute     = "route"
	StageDeliver   = "deliver"
	StageSink      = "sink"
)

// Stages lists the pipeline stages in flow order.
var Stages = []string{StageIngest, StageValidate, StageNormalise, StageRoute, StageDeliver}

// IsState reports whether topic is a stage's changelog, which Kafka must
// compact (keep the last record per key) rather than expire: the
// careflow.state. topics, the patient index, the review queue, the FHIR
// resources and the replays of dead letters.
func IsState(topic string) bool {
	return strings.HasPrefix(topic, statePrefix) || topic == Patients || topic == Review || topic == FHIR || topic == Replays
}

// Outbound is the topic holding events routed to destination dest.
func Outbound(dest string) string { return outboundPrefix + dest }

// DestinationOf returns the destination of an outbound topic, or "" when
// topic is not one.
func DestinationOf(topic string) string {
	if d, ok := strings.CutPrefix(topic, outboundPrefix); ok {
		return d
	}
	return ""
}

// DeadLetter is the dead-letter topic of stage.
func DeadLetter(stage string) string { return dlqPrefix + stage }

// Record headers. Every record on every careflow topic carries the first
// group; dead letters also carry the DLQ group.
const (
	HeaderMessageID      = "careflow.message_id"
	HeaderCorrelationID  = "careflow.correlation_id"
	HeaderIdempotencyKey = "careflow.idempotency_key"
	HeaderInterface      = "careflow.source_interface"
	HeaderIngestTime     = "careflow.ingest_time" // RFC 3339 with milliseconds, UTC
	HeaderDestination    = "careflow.destination"
	HeaderControlID      = "careflow.outbound_control_id"
	HeaderOutcomeStatus  = "careflow.outcome_status" // on outcome records: delivered, rejected, ...
	// HeaderReviewID is on a held message a person approved (careflow
	// review approve) when it goes back to the stage that held it.
	HeaderReviewID = "careflow.review_id"
	// HeaderReviewCode is the code of the hold that person approved: the
	// one hold the message may pass (another hold raises a new item).
	HeaderReviewCode = "careflow.review_code"
	// HeaderReplayOf is on a record careflow dlq replay put back on its
	// original topic: the id of the dead letter it came from, so that a
	// message's journey shows the replay, and a record that fails again
	// says which letter it was.
	HeaderReplayOf = "careflow.replay_of"

	// HeaderStageTimePrefix + stage name holds the time that stage
	// handled the record (RFC 3339, ms, UTC).
	HeaderStageTimePrefix = "careflow.stage_time."

	HeaderDLQStage     = "careflow.dlq.stage"
	HeaderDLQCode      = "careflow.dlq.error_code"
	HeaderDLQText      = "careflow.dlq.error_text"
	HeaderDLQLocation  = "careflow.dlq.error_location"
	HeaderDLQTopic     = "careflow.dlq.original_topic"
	HeaderDLQPartition = "careflow.dlq.original_partition"
	HeaderDLQOffset    = "careflow.dlq.original_offset"
)

// StageTime is the header holding the time stage handled a record.
func StageTime(stage string) string { return HeaderStageTimePrefix + stage }

// TimeFormat is the layout of every time-valued header.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"
