// This file holds the row types of the fact tables and the batch insert.

package analytics

import (
	"context"
	"fmt"
	"time"
)

// Transition is one message passing one stage: accepted at ingest,
// normalised, routed to a destination, delivered, rejected, dead-lettered.
// Table: transitions.
type Transition struct {
	RowID         string // deterministic: outcome id, message id + stage, or dead letter topic/partition/offset
	MessageID     string
	CorrelationID string
	Interface     string
	Destination   string // "" before routing
	MessageType   string
	TriggerEvent  string
	PatientHash   string // hex SHA-256 of the Kafka key; "" when none. Never the key itself.
	Stage         string
	Status        string
	ErrorCode     string
	ErrorLocation string
	EventTime     time.Time // EVN-2, else MSH-7, as the sender stated it; zero when unknown
	IngestTime    time.Time
	StageTime     time.Time // when the stage handled it; also decides the row's day
	Source        Source
}

// Source is where the sink read a row from.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Attempt is one delivery attempt or final result at a destination.
// Table: delivery_attempts.
type Attempt struct {
	RowID         string // the outcome id
	MessageID     string
	CorrelationID string
	Interface     string
	Destination   string
	MessageType   string
	TriggerEvent  string
	PatientHash   string
	Attempt       int
	Status        string // retrying, delivered, rejected
	ControlID     string
	AckCode       string // AA AE AR CA CE CR; "" over HTTP
	HTTPStatus    int    // 0 over MLLP
	ErrorCode     string
	ErrorLocation string
	Latency       time.Duration // this attempt's round trip
	IngestTime    time.Time
	At            time.Time
	RemoteIDs     []string // the destination's ids for what it stored (FHIR locations)
	ErrorText     string   // careflow's words for a failure, never the destination's
}

// DeadLetter is one record a stage dead-lettered. Table: dead_letters.
type DeadLetter struct {
	RowID             string // the dead letter's own topic/partition/offset
	Stage             string
	ErrorCode         string
	ErrorLocation     string
	ErrorText         string
	MessageID         string
	CorrelationID     string
	Interface         string
	PatientHash       string
	OriginalTopic     string
	OriginalPartition int32
	OriginalOffset    int64
	At                time.Time
}

// MessageSLA is the delivery target that applies to one message at one
// destination: that of the route that took it there (the tightest when
// several did). Table: message_slas.
type MessageSLA struct {
	MessageID   string
	Destination string
	Route       string
	SLA         time.Duration
	At          time.Time // the event's ingest time; decides the row's day
}

// Audit is one audit record: who did what to careflow. Table: audit.
type Audit struct {
	AuditID        string // the row's identity
	Recorded       time.Time
	Type           string
	Action         string
	Outcome        string
	OutcomeDesc    string
	AgentType      string
	AgentWho       string
	AgentNetwork   string
	SourceObserver string
	EntityType     string
	EntityWhat     string
	EntityDetail   string
	Count          int
}

// Exception is one careflow.exceptions record. Table: exceptions.
type Exception struct {
	ExceptionID   string // the row's identity
	Code          string
	Stage         string
	Interface     string
	MessageID     string
	CorrelationID string
	ControlID     string
	PatientHash   string // never the identifier
	PlacerOrder   string
	FillerOrder   string
	Reason        string
	Action        string
	At            time.Time
}

// OrderTransition is one careflow.orders record. Table: order_transitions.
type OrderTransition struct {
	TransitionID  string // the row's identity
	PlacerOrder   string
	FillerOrder   string
	PatientHash   string
	FromState     string
	State         string
	MessageID     string
	CorrelationID string
	Interface     string
	MessageType   string
	TriggerEvent  string
	At            time.Time
}

// Review is one careflow.review record: an item held, or its decision.
// Table: reviews, one row per state of an item.
type Review struct {
	RowID          string // review id / status
	ReviewID       string
	Status         string
	Code           string
	Stage          string
	Reason         string
	Location       string
	Interface      string
	MessageID      string
	CorrelationID  string
	ControlID      string
	MessageType    string
	PatientHash    string
	HeldAt         time.Time
	DecidedBy      string
	DecidedAt      time.Time
	DecisionReason string
}

// Received is one message as ingest accepted it (careflow.raw), with
// where its raw record is. Table: messages.
type Received struct {
	MessageID     string
	CorrelationID string
	Interface     string
	Transport     string
	ControlID     string // the sender's MSH-10
	MessageType   string
	TriggerEvent  string
	PatientHash   string
	IngestTime    time.Time // also decides the row's day
	Raw           Source
}

// Kinds of MessageKey.
const (
	KeyPlacerOrder = "placer_order"
	KeyFillerOrder = "filler_order"
)

// MessageKey is one more key a message is known by: an order number of
// its canonical event, as number^namespace. Table: message_keys.
type MessageKey struct {
	MessageID string
	Kind      string // KeyPlacerOrder, KeyFillerOrder
	Value     string
	At        time.Time // the message's ingest time; decides the row's day
}

// Batch is what the sink inserts at once.
type Batch struct {
	Transitions []Transition
	Attempts    []Attempt
	DeadLetters []DeadLetter
	SLAs        []MessageSLA
	Audits      []Audit
	Exceptions  []Exception
	Orders      []OrderTransition
	Reviews     []Review
	Received    []Received
	MessageKeys []MessageKey
}

// Len is the number of rows in b.
func (b *Batch) Len() int {
	return len(b.Transitions) + len(b.Attempts) + len(b.DeadLetters) + len(b.SLAs) + len(b.Audits) +
		len(b.Exceptions) + len(b.Orders) + len(b.Reviews) + len(b.Received) + len(b.MessageKeys)
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	b.Transitions, b.Attempts, b.DeadLetters, b.SLAs, b.Audits = b.Transitions[:0], b.Attempts[:0], b.DeadLetters[:0], b.SLAs[:0], b.Audits[:0]
	b.Exceptions, b.Orders, b.Reviews = b.Exceptions[:0], b.Orders[:0], b.Reviews[:0]
	b.Received, b.MessageKeys = b.Received[:0], b.MessageKeys[:0]
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// day is the partition day of a row at t (UTC); the epoch when t is zero,
// so that the row's identity stays deterministic.
func day(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Insert writes b, one INSERT per table. It is safe to repeat after a
// failure, even a partial one: a row inserted twice collapses into one.
func (s *Store) Insert(ctx context.Context, b *Batch) error {
	now := time.Now().UTC()
	if len(b.Transitions) > 0 {
		err := s.insert(ctx, "transitions", `day, row_id, message_id, correlation_id, interface, destination,
			message_type, trigger_event, patient_hash, stage, status, error_code, error_location,
			event_ms, ingest_ms, stage_ms, source_topic, source_partition, source_offset, inserted_at`,
			len(b.Transitions), func(i int) []any {
				r := &b.Transitions[i]
				return []any{day(r.StageTime), r.RowID, r.MessageID, r.CorrelationID, r.Interface, r.Destination,
					r.MessageType, r.TriggerEvent, r.PatientHash, r.Stage, r.Status, r.ErrorCode, r.ErrorLocation,
					ms(r.EventTime), ms(r.IngestTime), ms(r.StageTime), r.Source.Topic, r.Source.Partition, r.Source.Offset, now}
			})
		if err != nil {
			return err
		}
	}
	if len(b.Attempts) > 0 {
		cols := `day, row_id, message_id, correlation_id, interface, destination,
			message_type, trigger_event, patient_hash, attempt, status, control_id, ack_code, http_status,
			error_code, error_location, latency_ms, ingest_ms, at_ms, inserted_at`
		// An older schema has no column yet for what a later migration added.
		remote, text := s.version >= 8, s.version >= 10
		if remote {
			cols += ", remote_ids"
		}
		if text {
			cols += ", error_text"
		}
		err := s.insert(ctx, "delivery_attempts", cols,
			len(b.Attempts), func(i int) []any {
				r := &b.Attempts[i]
				row := []any{day(r.At), r.RowID, r.MessageID, r.CorrelationID, r.Interface, r.Destination,
					r.MessageType, r.TriggerEvent, r.PatientHash, uint32(max(r.Attempt, 0)), r.Status, r.ControlID, r.AckCode,
					uint16(min(max(r.HTTPStatus, 0), 65535)), r.ErrorCode, r.ErrorLocation, r.Latency.Milliseconds(),
					ms(r.IngestTime), ms(r.At), now}
				if remote {
					row = append(row, nonNilStrings(r.RemoteIDs))
				}
				if text {
					row = append(row, r.ErrorText)
				}
				return row
			})
		if err != nil {
			return err
		}
	}
	if len(b.DeadLetters) > 0 {
		err := s.insert(ctx, "dead_letters", `day, row_id, stage, error_code, error_location, error_text,
			message_id, correlation_id, interface, patient_hash, original_topic, original_partition,
			original_offset, at_ms, inserted_at`,
			len(b.DeadLetters), func(i int) []any {
				r := &b.DeadLetters[i]
				return []any{day(r.At), r.RowID, r.Stage, r.ErrorCode, r.ErrorLocation, r.ErrorText,
					r.MessageID, r.CorrelationID, r.Interface, r.PatientHash, r.OriginalTopic, r.OriginalPartition,
					r.OriginalOffset, ms(r.At), now}
			})
		if err != nil {
			return err
		}
	}
	if len(b.SLAs) > 0 {
		err := s.insert(ctx, "message_slas", `day, row_id, message_id, destination, route, sla_ms, inserted_at`,
			len(b.SLAs), func(i int) []any {
				r := &b.SLAs[i]
				return []any{day(r.At), r.MessageID + "/" + r.Destination, r.MessageID, r.Destination, r.Route, r.SLA.Milliseconds(), now}
			})
		if err != nil {
			return err
		}
	}
	if len(b.Audits) > 0 {
		err := s.insert(ctx, "audit", `day, row_id, recorded_ms, type, action, outcome, outcome_desc,
			agent_type, agent_who, agent_network, source_observer, entity_type, entity_what, entity_detail,
			count, inserted_at`,
			len(b.Audits), func(i int) []any {
				r := &b.Audits[i]
				return []any{day(r.Recorded), r.AuditID, ms(r.Recorded), r.Type, r.Action, r.Outcome, r.OutcomeDesc,
					r.AgentType, r.AgentWho, r.AgentNetwork, r.SourceObserver, r.EntityType, r.EntityWhat, r.EntityDetail,
					uint32(max(r.Count, 1)), now}
			})
		if err != nil {
			return err
		}
	}
	if len(b.Exceptions) > 0 {
		err := s.insert(ctx, "exceptions", `day, row_id, code, stage, interface, message_id, correlation_id,
			control_id, patient_hash, placer_order, filler_order, reason, action, at_ms, inserted_at`,
			len(b.Exceptions), func(i int) []any {
				r := &b.Exceptions[i]
				return []any{day(r.At), r.ExceptionID, r.Code, r.Stage, r.Interface, r.MessageID, r.CorrelationID,
					r.ControlID, r.PatientHash, r.PlacerOrder, r.FillerOrder, r.Reason, r.Action, ms(r.At), now}
			})
		if err != nil {
			return err
		}
	}
	if len(b.Reviews) > 0 {
		err := s.insert(ctx, "reviews", `day, row_id, review_id, status, code, stage, reason, location, interface,
			message_id, correlation_id, control_id, message_type, patient_hash, held_at_ms, decided_by, decided_at_ms,
			decision_reason, inserted_at`,
			len(b.Reviews), func(i int) []any {
				r := &b.Reviews[i]
				return []any{day(r.HeldAt), r.RowID, r.ReviewID, r.Status, r.Code, r.Stage, r.Reason, r.Location, r.Interface,
					r.MessageID, r.CorrelationID, r.ControlID, r.MessageType, r.PatientHash, ms(r.HeldAt), r.DecidedBy,
					ms(r.DecidedAt), r.DecisionReason, now}
			})
		if err != nil {
			return err
		}
	}
	if len(b.Orders) > 0 {
		err := s.insert(ctx, "order_transitions", `day, row_id, placer_order, filler_order, patient_hash, from_state, state,
			message_id, correlation_id, interface, message_type, trigger_event, at_ms, inserted_at`,
			len(b.Orders), func(i int) []any {
				r := &b.Orders[i]
				return []any{day(r.At), r.TransitionID, r.PlacerOrder, r.FillerOrder, r.PatientHash, r.FromState, r.State,
					r.MessageID, r.CorrelationID, r.Interface, r.MessageType, r.TriggerEvent, ms(r.At), now}
			})
		if err != nil {
			return err
		}
	}
	// Open migrates to the latest version, so only a test's older schema
	// lacks these tables.
	if len(b.Received) > 0 && s.version >= 9 {
		err := s.insert(ctx, "messages", `day, row_id, message_id, correlation_id, interface, transport, control_id,
			message_type, trigger_event, patient_hash, ingest_ms, raw_topic, raw_partition, raw_offset, inserted_at`,
			len(b.Received), func(i int) []any {
				r := &b.Received[i]
				return []any{day(r.IngestTime), r.MessageID, r.MessageID, r.CorrelationID, r.Interface, r.Transport, r.ControlID,
					r.MessageType, r.TriggerEvent, r.PatientHash, ms(r.IngestTime), r.Raw.Topic, r.Raw.Partition, r.Raw.Offset, now}
			})
		if err != nil {
			return err
		}
	}
	if len(b.MessageKeys) > 0 && s.version >= 9 {
		err := s.insert(ctx, "message_keys", `day, row_id, message_id, kind, value, inserted_at`,
			len(b.MessageKeys), func(i int) []any {
				r := &b.MessageKeys[i]
				return []any{day(r.At), r.MessageID + "/" + r.Kind + "/" + r.Value, r.MessageID, r.Kind, r.Value, now}
			})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) insert(ctx context.Context, table, columns string, n int, row func(int) []any) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+columns+")")
	if err != nil {
		return fmt.Errorf("analytics: prepare insert into %s.%s: %w", s.db, table, err)
	}
	for i := range n {
		if err := b.Append(row(i)...); err != nil {
			_ = b.Abort()
			return fmt.Errorf("analytics: append row %d to %s.%s: %w", i, s.db, table, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("analytics: insert %d rows into %s.%s: %w", n, s.db, table, err)
	}
	return nil
}

// nonNilStrings is list, or an empty list for nil: an Array column takes
// no NULL.
func nonNilStrings(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}
