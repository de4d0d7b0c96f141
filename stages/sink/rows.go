// This file turns one Kafka record into analytics rows. A record that does
// not decode is returned as an error; the sink dead-letters it.

package sink

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// Error codes of the sink's dead letters.
const (
	CodeNotAvro       = "not_avro"       // the value is not in the Confluent wire format
	CodeMalformed     = "malformed"      // the Avro body does not decode with its schema
	CodeWrongType     = "wrong_type"     // the record is another type than its topic carries
	CodeUnknownSchema = "unknown_schema" // the registry does not know the schema id
	CodeUnknownTopic  = "unknown_topic"
)

// Status of the rows the sink derives from records that carry none.
const (
	StatusAccepted     = "accepted"      // a raw record: ingest took the message
	StatusValid        = "valid"         // a valid record: it passed conformance and dedup
	StatusNormalised   = "normalised"    // an events record
	StatusDeadLettered = "dead_lettered" // a dead letter
)

// decodeError is a record the sink cannot read.
type decodeError struct {
	code string
	err  error
	// retry: the registry could not be asked, so the record is not proven
	// unreadable; the sink waits and tries again instead of dead-lettering.
	retry bool
}

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// PatientHash is the hex SHA-256 of a Kafka key (the patient key); "" for
// no key. Analytics sees only this, never the identifier.
func PatientHash(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:])
}

// appendRows decodes r and appends its rows to b.
func (s *Sink) appendRows(r *kgo.Record, b *analytics.Batch) error {
	src := analytics.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	hash := PatientHash(r.Key)
	switch {
	case r.Topic == topics.Raw:
		var m avro.RawMessage
		if err := s.decode(r, &m); err != nil {
			return err
		}
		b.Transitions = append(b.Transitions, analytics.Transition{
			RowID: m.MessageID + "/" + topics.StageIngest, MessageID: m.MessageID, CorrelationID: m.CorrelationID,
			Interface: m.Interface, MessageType: m.MessageType, TriggerEvent: m.TriggerEvent, PatientHash: hash,
			Stage: topics.StageIngest, Status: StatusAccepted, IngestTime: m.ReceivedAt,
			StageTime: stageTime(r, topics.StageIngest, m.ReceivedAt), Source: src,
		})
		b.Received = append(b.Received, analytics.Received{
			MessageID: m.MessageID, CorrelationID: m.CorrelationID, Interface: m.Interface, Transport: m.Transport,
			ControlID: m.ControlID, MessageType: m.MessageType, TriggerEvent: m.TriggerEvent, PatientHash: hash,
			IngestTime: m.ReceivedAt, Raw: src,
		})
	case r.Topic == topics.Valid:
		var m avro.RawMessage
		if err := s.decode(r, &m); err != nil {
			return err
		}
		b.Transitions = append(b.Transitions, analytics.Transition{
			RowID: m.MessageID + "/" + topics.StageValidate, MessageID: m.MessageID, CorrelationID: m.CorrelationID,
			Interface: m.Interface, MessageType: m.MessageType, TriggerEvent: m.TriggerEvent, PatientHash: hash,
			Stage: topics.StageValidate, Status: StatusValid, IngestTime: m.ReceivedAt,
			StageTime: stageTime(r, topics.StageValidate, r.Timestamp), Source: src,
		})
	case r.Topic == topics.Events:
		var ev avro.ClinicalEvent
		if err := s.decode(r, &ev); err != nil {
			return err
		}
		at := stageTime(r, topics.StageNormalise, r.Timestamp)
		b.Transitions = append(b.Transitions, analytics.Transition{
			RowID: ev.EventID + "/" + topics.StageNormalise, MessageID: ev.EventID, CorrelationID: ev.CorrelationID,
			Interface: ev.Provenance.Interface, MessageType: ev.MessageType, TriggerEvent: ev.TriggerEvent, PatientHash: hash,
			Stage: topics.StageNormalise, Status: StatusNormalised, EventTime: ParseDTM(ev.Provenance.EventTime),
			IngestTime: ev.Provenance.IngestTime, StageTime: at, Source: src,
		})
		b.MessageKeys = appendOrderKeys(b.MessageKeys, &ev)
	case r.Topic == topics.Outcomes:
		var o avro.DeliveryOutcome
		if err := s.decode(r, &o); err != nil {
			return err
		}
		b.Transitions = append(b.Transitions, analytics.Transition{
			RowID: o.OutcomeID, MessageID: o.MessageID, CorrelationID: o.CorrelationID, Interface: o.Interface,
			Destination: o.Destination, MessageType: o.MessageType, TriggerEvent: o.TriggerEvent, PatientHash: hash,
			Stage: o.Stage, Status: o.Status, ErrorCode: o.ErrorCode, ErrorLocation: o.ErrorLocation,
			IngestTime: o.IngestTime, StageTime: o.At, Source: src,
		})
		if o.Status == avro.StatusRouted && o.SLAMillis > 0 {
			// The route stage recorded which routes took the event here
			// and the target they set.
			b.SLAs = append(b.SLAs, analytics.MessageSLA{MessageID: o.MessageID, Destination: o.Destination,
				Route: strings.Join(o.Routes, ","), SLA: time.Duration(o.SLAMillis) * time.Millisecond, At: o.IngestTime})
		}
		if o.Stage == topics.StageDeliver {
			b.Attempts = append(b.Attempts, analytics.Attempt{
				RowID: o.OutcomeID, MessageID: o.MessageID, CorrelationID: o.CorrelationID, Interface: o.Interface,
				Destination: o.Destination, MessageType: o.MessageType, TriggerEvent: o.TriggerEvent, PatientHash: hash,
				Attempt: o.Attempt, Status: o.Status, ControlID: o.ControlID, AckCode: o.AckCode, HTTPStatus: o.HTTPStatus,
				ErrorCode: o.ErrorCode, ErrorLocation: o.ErrorLocation, Latency: time.Duration(o.LatencyMillis) * time.Millisecond,
				IngestTime: o.IngestTime, At: o.At, RemoteIDs: o.RemoteIDs, ErrorText: o.ErrorText,
			})
		}
	case strings.HasPrefix(r.Topic, topics.DeadLetter("")):
		var dl avro.DeadLetter
		if err := s.decode(r, &dl); err != nil {
			return err
		}
		if hash == "" {
			hash = PatientHash(dl.OriginalKey)
		}
		id := r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
		var dest, ingest string
		for _, h := range dl.OriginalHeaders {
			switch h.Key {
			case topics.HeaderDestination:
				dest = string(h.Value)
			case topics.HeaderIngestTime:
				ingest = string(h.Value)
			}
		}
		it, _ := time.Parse(topics.TimeFormat, ingest)
		b.Transitions = append(b.Transitions, analytics.Transition{
			RowID: id, MessageID: dl.MessageID, CorrelationID: dl.CorrelationID, Interface: dl.Interface,
			Destination: dest, PatientHash: hash, Stage: dl.Stage, Status: StatusDeadLettered,
			ErrorCode: dl.ErrorCode, ErrorLocation: dl.ErrorLocation, IngestTime: it, StageTime: dl.At, Source: src,
		})
		b.DeadLetters = append(b.DeadLetters, analytics.DeadLetter{
			RowID: id, Stage: dl.Stage, ErrorCode: dl.ErrorCode, ErrorLocation: dl.ErrorLocation, ErrorText: dl.ErrorText,
			MessageID: dl.MessageID, CorrelationID: dl.CorrelationID, Interface: dl.Interface, PatientHash: hash,
			OriginalTopic: dl.OriginalTopic, OriginalPartition: dl.OriginalPartition, OriginalOffset: dl.OriginalOffset, At: dl.At,
		})
	case r.Topic == topics.Audit:
		var a avro.AuditEvent
		if err := s.decode(r, &a); err != nil {
			return err
		}
		b.Audits = append(b.Audits, analytics.Audit{
			AuditID: a.AuditID, Recorded: a.Recorded, Type: a.Type, Action: a.Action, Outcome: a.Outcome,
			OutcomeDesc: a.OutcomeDesc, AgentType: a.AgentType, AgentWho: a.AgentWho, AgentNetwork: a.AgentNetwork,
			SourceObserver: a.SourceObserver, EntityType: a.EntityType, EntityWhat: a.EntityWhat,
			EntityDetail: a.EntityDetail, Count: a.Count,
		})
	case r.Topic == topics.Exceptions:
		var x avro.Exception
		if err := s.decode(r, &x); err != nil {
			return err
		}
		b.Exceptions = append(b.Exceptions, analytics.Exception{
			ExceptionID: x.ExceptionID, Code: x.Code, Stage: x.Stage, Interface: x.Interface, MessageID: x.MessageID,
			CorrelationID: x.CorrelationID, ControlID: x.ControlID, PatientHash: hash, PlacerOrder: x.PlacerOrder,
			FillerOrder: x.FillerOrder, Reason: x.Reason, Action: x.Action, At: x.At,
		})
	case r.Topic == topics.Orders:
		var x avro.OrderTransition
		if err := s.decode(r, &x); err != nil {
			return err
		}
		b.Orders = append(b.Orders, analytics.OrderTransition{
			TransitionID: x.TransitionID, PlacerOrder: x.PlacerOrder, FillerOrder: x.FillerOrder, PatientHash: hash,
			FromState: x.FromState, State: x.State, MessageID: x.MessageID, CorrelationID: x.CorrelationID,
			Interface: x.Interface, MessageType: x.MessageType, TriggerEvent: x.TriggerEvent, At: x.At,
		})
	case r.Topic == topics.Review:
		var x avro.Review
		if err := s.decode(r, &x); err != nil {
			return err
		}
		b.Reviews = append(b.Reviews, analytics.Review{
			RowID: x.ReviewID + "/" + x.Status, ReviewID: x.ReviewID, Status: x.Status, Code: x.Code, Stage: x.Stage,
			Reason: x.Reason, Location: x.Location, Interface: x.Interface, MessageID: x.MessageID,
			CorrelationID: x.CorrelationID, ControlID: x.ControlID, MessageType: x.MessageType,
			PatientHash: PatientHash([]byte(x.PatientKey)), HeldAt: x.HeldAt, DecidedBy: x.DecidedBy, DecidedAt: x.DecidedAt,
			DecisionReason: x.DecisionReason,
		})
	default:
		return &decodeError{code: CodeUnknownTopic, err: fmt.Errorf("topic %s is not one the sink reads", r.Topic)}
	}
	return nil
}

// appendOrderKeys appends the order numbers of ev, placer and filler, each
// as the order lifecycle keys them (number^namespace), once each.
func appendOrderKeys(keys []analytics.MessageKey, ev *avro.ClinicalEvent) []analytics.MessageKey {
	seen := map[string]bool{}
	add := func(kind, number, namespace string) {
		v := lifecycle.OrderKey(number, namespace)
		if v == "" || seen[kind+v] {
			return
		}
		seen[kind+v] = true
		keys = append(keys, analytics.MessageKey{MessageID: ev.EventID, Kind: kind, Value: v, At: ev.Provenance.IngestTime})
	}
	for i := range ev.Orders {
		o := &ev.Orders[i]
		add(analytics.KeyPlacerOrder, o.PlacerOrderNumber, o.PlacerNamespace)
		add(analytics.KeyFillerOrder, o.FillerOrderNumber, o.FillerNamespace)
	}
	return keys
}

func (s *Sink) decode(r *kgo.Record, v any) error {
	err := s.cfg.Serde.Decode(r.Value, v)
	if err == nil {
		return nil
	}
	code := CodeMalformed
	var wrong *avro.WrongTypeError
	var unknown *avro.UnknownSchemaError
	switch {
	case errors.Is(err, avro.ErrNotAvro):
		code = CodeNotAvro
	case errors.As(err, &wrong):
		code = CodeWrongType
	case errors.As(err, &unknown):
		code = CodeUnknownSchema
		return &decodeError{code: code, retry: !missingSchema(unknown.Err),
			err: fmt.Errorf("decode %s record at partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)}
	}
	return &decodeError{code: code, err: fmt.Errorf("decode %s record at partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)}
}

// missingSchema reports whether a registry answered that a schema id does
// not exist (Confluent error 40403), as opposed to not answering.
func missingSchema(err error) bool {
	var local *registry.Error
	var remote *sr.ResponseError
	switch {
	case errors.As(err, &local):
		return local.Code == registry.CodeSchemaNotFound
	case errors.As(err, &remote):
		return remote.ErrorCode == registry.CodeSchemaNotFound || remote.StatusCode == 404
	}
	return false
}

// stageTime is the time stage handled r, from its header, else fallback.
func stageTime(r *kgo.Record, stage string, fallback time.Time) time.Time {
	key := topics.StageTime(stage)
	for _, h := range r.Headers {
		if h.Key == key {
			if t, err := time.Parse(topics.TimeFormat, string(h.Value)); err == nil {
				return t
			}
		}
	}
	return fallback
}

// ParseDTM reads an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]); zero
// when it is empty or not a DTM. Without an offset the time is taken as
// UTC: a sender's local time is not known here.
func ParseDTM(s string) time.Time {
	s = strings.TrimSpace(s)
	loc := time.UTC
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		z := s[i:]
		s = s[:i]
		if len(z) == 5 {
			h, err1 := strconv.Atoi(z[1:3])
			m, err2 := strconv.Atoi(z[3:5])
			if err1 == nil && err2 == nil {
				off := (h*60 + m) * 60
				if z[0] == '-' {
					off = -off
				}
				loc = time.FixedZone("", off)
			}
		}
	}
	frac := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		f := (s[i+1:] + "000")[:3]
		frac, _ = strconv.Atoi(f)
		s = s[:i]
	}
	if len(s) < 4 || len(s)%2 != 0 || len(s) > 14 {
		return time.Time{}
	}
	parts := []int{0, 1, 1, 0, 0, 0}
	for i, j := 0, 0; j < len(s); i++ {
		w := 2
		if i == 0 {
			w = 4
		}
		v, err := strconv.Atoi(s[j : j+w])
		if err != nil {
			return time.Time{}
		}
		parts[i] = v
		j += w
	}
	t := time.Date(parts[0], time.Month(parts[1]), parts[2], parts[3], parts[4], parts[5], frac*int(time.Millisecond), loc)
	if t.Month() != time.Month(parts[1]) || t.Day() != parts[2] {
		return time.Time{} // 20260231 is not a date
	}
	return t.UTC()
}
