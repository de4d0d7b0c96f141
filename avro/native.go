// This file converts between the Go records and goavro's native form
// (map[string]any per record, []any per array), one explicit function per
// record so that a reader sees every field name next to its Go field.
//
// The from-native getters are tolerant on purpose: a key that is missing
// (an older writer) yields the field's schema default, and keys nobody asks
// for (a newer writer) are ignored. Every default in the .avsc files is the
// Go zero value, except Observation.order_index (-1) and AuditEvent.count
// (1).

package avro

import (
	"bytes"
	"time"

	"github.com/linkedin/goavro/v2"
)

func rawToNative(r *RawMessage) map[string]any {
	return map[string]any{
		"message_id":          r.MessageID,
		"correlation_id":      r.CorrelationID,
		"idempotency_key":     r.IdempotencyKey,
		"source_interface":    r.Interface,
		"transport":           r.Transport,
		"received_at":         millis(r.ReceivedAt),
		"payload":             nonNil(r.Payload),
		"message_type":        r.MessageType,
		"trigger_event":       r.TriggerEvent,
		"control_id":          r.ControlID,
		"version":             r.Version,
		"sending_application": r.SendingApplication,
		"sending_facility":    r.SendingFacility,
		"patient_key":         r.PatientKey,
		"charset":             r.Charset,
		"writer":              r.Writer,
		"related":             nonNil(r.Related),
	}
}

func rawFromNative(m map[string]any) RawMessage {
	return RawMessage{
		MessageID:          str(m, "message_id"),
		CorrelationID:      str(m, "correlation_id"),
		IdempotencyKey:     str(m, "idempotency_key"),
		Interface:          str(m, "source_interface"),
		Transport:          str(m, "transport"),
		ReceivedAt:         timeOf(m, "received_at"),
		Payload:            bytesOf(m, "payload"),
		MessageType:        str(m, "message_type"),
		TriggerEvent:       str(m, "trigger_event"),
		ControlID:          str(m, "control_id"),
		Version:            str(m, "version"),
		SendingApplication: str(m, "sending_application"),
		SendingFacility:    str(m, "sending_facility"),
		PatientKey:         str(m, "patient_key"),
		Charset:            str(m, "charset"),
		Writer:             str(m, "writer"),
		Related:            bytesOf(m, "related"),
	}
}

func outcomeToNative(o *DeliveryOutcome) map[string]any {
	return map[string]any{
		"outcome_id":       o.OutcomeID,
		"message_id":       o.MessageID,
		"correlation_id":   o.CorrelationID,
		"idempotency_key":  o.IdempotencyKey,
		"source_interface": o.Interface,
		"destination":      o.Destination,
		"stage":            o.Stage,
		"status":           o.Status,
		"attempt":          int32(o.Attempt),
		"control_id":       o.ControlID,
		"ack_code":         o.AckCode,
		"http_status":      int32(o.HTTPStatus),
		"error_code":       o.ErrorCode,
		"error_location":   o.ErrorLocation,
		"error_text":       o.ErrorText,
		"message_type":     o.MessageType,
		"trigger_event":    o.TriggerEvent,
		"ingest_time":      millis(o.IngestTime),
		"at":               millis(o.At),
		"latency_ms":       o.LatencyMillis,
		"routes":           stringsToNative(o.Routes),
		"sla_ms":           o.SLAMillis,
		"remote_ids":       stringsToNative(o.RemoteIDs),
	}
}

func outcomeFromNative(m map[string]any) DeliveryOutcome {
	return DeliveryOutcome{
		OutcomeID:      str(m, "outcome_id"),
		MessageID:      str(m, "message_id"),
		CorrelationID:  str(m, "correlation_id"),
		IdempotencyKey: str(m, "idempotency_key"),
		Interface:      str(m, "source_interface"),
		Destination:    str(m, "destination"),
		Stage:          str(m, "stage"),
		Status:         str(m, "status"),
		Attempt:        int(int32Of(m, "attempt", 0)),
		ControlID:      str(m, "control_id"),
		AckCode:        str(m, "ack_code"),
		HTTPStatus:     int(int32Of(m, "http_status", 0)),
		ErrorCode:      str(m, "error_code"),
		ErrorLocation:  str(m, "error_location"),
		ErrorText:      str(m, "error_text"),
		MessageType:    str(m, "message_type"),
		TriggerEvent:   str(m, "trigger_event"),
		IngestTime:     timeOf(m, "ingest_time"),
		At:             timeOf(m, "at"),
		LatencyMillis:  int64Of(m, "latency_ms"),
		Routes:         stringsOf(m, "routes"),
		SLAMillis:      int64Of(m, "sla_ms"),
		RemoteIDs:      stringsOf(m, "remote_ids"),
	}
}

func deadLetterToNative(d *DeadLetter) map[string]any {
	headers := make([]any, len(d.OriginalHeaders))
	for i, h := range d.OriginalHeaders {
		headers[i] = map[string]any{"key": h.Key, "value": nonNil(h.Value)}
	}
	return map[string]any{
		"stage":              d.Stage,
		"error_code":         d.ErrorCode,
		"error_location":     d.ErrorLocation,
		"error_text":         d.ErrorText,
		"error_detail":       d.ErrorDetail,
		"message_id":         d.MessageID,
		"correlation_id":     d.CorrelationID,
		"source_interface":   d.Interface,
		"original_topic":     d.OriginalTopic,
		"original_partition": d.OriginalPartition,
		"original_offset":    d.OriginalOffset,
		"original_key":       nonNil(d.OriginalKey),
		"original_value":     nonNil(d.OriginalValue),
		"original_headers":   headers,
		"at":                 millis(d.At),
	}
}

func deadLetterFromNative(m map[string]any) DeadLetter {
	var headers []Header
	if a := arrayOf(m, "original_headers"); len(a) > 0 {
		headers = make([]Header, len(a))
		for i, v := range a {
			h, _ := v.(map[string]any)
			headers[i] = Header{Key: str(h, "key"), Value: bytesOf(h, "value")}
		}
	}
	return DeadLetter{
		Stage:             str(m, "stage"),
		ErrorCode:         str(m, "error_code"),
		ErrorLocation:     str(m, "error_location"),
		ErrorText:         str(m, "error_text"),
		ErrorDetail:       str(m, "error_detail"),
		MessageID:         str(m, "message_id"),
		CorrelationID:     str(m, "correlation_id"),
		Interface:         str(m, "source_interface"),
		OriginalTopic:     str(m, "original_topic"),
		OriginalPartition: int32Of(m, "original_partition", 0),
		OriginalOffset:    int64Of(m, "original_offset"),
		OriginalKey:       bytesOf(m, "original_key"),
		OriginalValue:     bytesOf(m, "original_value"),
		OriginalHeaders:   headers,
		At:                timeOf(m, "at"),
	}
}

func auditToNative(a *AuditEvent) map[string]any {
	return map[string]any{
		"audit_id":        a.AuditID,
		"recorded":        millis(a.Recorded),
		"type":            a.Type,
		"action":          a.Action,
		"outcome":         a.Outcome,
		"outcome_desc":    a.OutcomeDesc,
		"agent_type":      a.AgentType,
		"agent_who":       a.AgentWho,
		"agent_network":   a.AgentNetwork,
		"source_observer": a.SourceObserver,
		"entity_type":     a.EntityType,
		"entity_what":     a.EntityWhat,
		"entity_detail":   a.EntityDetail,
		"count":           int32(max(a.Count, 1)),
	}
}

func auditFromNative(m map[string]any) AuditEvent {
	return AuditEvent{
		AuditID:        str(m, "audit_id"),
		Recorded:       timeOf(m, "recorded"),
		Type:           str(m, "type"),
		Action:         str(m, "action"),
		Outcome:        str(m, "outcome"),
		OutcomeDesc:    str(m, "outcome_desc"),
		AgentType:      str(m, "agent_type"),
		AgentWho:       str(m, "agent_who"),
		AgentNetwork:   str(m, "agent_network"),
		SourceObserver: str(m, "source_observer"),
		EntityType:     str(m, "entity_type"),
		EntityWhat:     str(m, "entity_what"),
		EntityDetail:   str(m, "entity_detail"),
		Count:          int(int32Of(m, "count", 1)),
	}
}

func exceptionToNative(x *Exception) map[string]any {
	return map[string]any{
		"exception_id":     x.ExceptionID,
		"code":             x.Code,
		"stage":            x.Stage,
		"source_interface": x.Interface,
		"message_id":       x.MessageID,
		"correlation_id":   x.CorrelationID,
		"control_id":       x.ControlID,
		"patient_key":      x.PatientKey,
		"placer_order":     x.PlacerOrder,
		"filler_order":     x.FillerOrder,
		"reason":           x.Reason,
		"action":           x.Action,
		"at":               millis(x.At),
		"location":         x.Location,
		"coded_value":      x.CodedValue,
		"coding_system":    x.CodingSystem,
		"review_id":        x.ReviewID,
	}
}

func exceptionFromNative(m map[string]any) Exception {
	return Exception{
		ExceptionID:   str(m, "exception_id"),
		Code:          str(m, "code"),
		Stage:         str(m, "stage"),
		Interface:     str(m, "source_interface"),
		MessageID:     str(m, "message_id"),
		CorrelationID: str(m, "correlation_id"),
		ControlID:     str(m, "control_id"),
		PatientKey:    str(m, "patient_key"),
		PlacerOrder:   str(m, "placer_order"),
		FillerOrder:   str(m, "filler_order"),
		Reason:        str(m, "reason"),
		Action:        str(m, "action"),
		At:            timeOf(m, "at"),
		Location:      str(m, "location"),
		CodedValue:    str(m, "coded_value"),
		CodingSystem:  str(m, "coding_system"),
		ReviewID:      str(m, "review_id"),
	}
}

func transitionToNative(x *OrderTransition) map[string]any {
	return map[string]any{
		"transition_id":    x.TransitionID,
		"placer_order":     x.PlacerOrder,
		"filler_order":     x.FillerOrder,
		"patient_key":      x.PatientKey,
		"from_state":       x.FromState,
		"state":            x.State,
		"message_id":       x.MessageID,
		"correlation_id":   x.CorrelationID,
		"source_interface": x.Interface,
		"message_type":     x.MessageType,
		"trigger_event":    x.TriggerEvent,
		"at":               millis(x.At),
	}
}

func transitionFromNative(m map[string]any) OrderTransition {
	return OrderTransition{
		TransitionID:  str(m, "transition_id"),
		PlacerOrder:   str(m, "placer_order"),
		FillerOrder:   str(m, "filler_order"),
		PatientKey:    str(m, "patient_key"),
		FromState:     str(m, "from_state"),
		State:         str(m, "state"),
		MessageID:     str(m, "message_id"),
		CorrelationID: str(m, "correlation_id"),
		Interface:     str(m, "source_interface"),
		MessageType:   str(m, "message_type"),
		TriggerEvent:  str(m, "trigger_event"),
		At:            timeOf(m, "at"),
	}
}

// millis is a time as timestamp-millis. The zero time.Time is 0, the
// schema default, so that "unset" reads back as unset.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// nonNil gives goavro an empty slice for nil, which it would reject.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// bytesOf copies, because goavro's bytes alias the record buffer, which a
// Kafka client may reuse. Empty reads back as nil.
func bytesOf(m map[string]any, key string) []byte {
	b, _ := m[key].([]byte)
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

func int32Of(m map[string]any, key string, def int32) int32 {
	switch v := m[key].(type) {
	case int32:
		return v
	case int64:
		return int32(v)
	}
	return def
}

func int64Of(m map[string]any, key string) int64 {
	switch v := m[key].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	}
	return 0
}

// timeOf reads a timestamp-millis field; 0 (or absent) is the zero time.
func timeOf(m map[string]any, key string) time.Time {
	var ms int64
	switch v := m[key].(type) {
	case time.Time:
		ms = v.UnixMilli()
	case int64:
		ms = v
	}
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func recordOf(m map[string]any, key string) map[string]any {
	r, _ := m[key].(map[string]any)
	return r
}

func arrayOf(m map[string]any, key string) []any {
	a, _ := m[key].([]any)
	return a
}

// unionRecordOf reads a ["null", record] field: nil for null, else the
// record, whatever name the writer gave its branch.
func unionRecordOf(m map[string]any, key string) map[string]any {
	u, ok := m[key].(map[string]any)
	if !ok || len(u) != 1 {
		return nil
	}
	for _, v := range u {
		r, _ := v.(map[string]any)
		return r
	}
	return nil
}

func stringsOf(m map[string]any, key string) []string {
	a := arrayOf(m, key)
	if len(a) == 0 {
		return nil
	}
	out := make([]string, len(a))
	for i, v := range a {
		out[i], _ = v.(string)
	}
	return out
}

func stringsToNative(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// union wraps a record for a ["null", record] field.
func union(name string, r map[string]any) any { return goavro.Union(name, r) }

func reviewToNative(x *Review) map[string]any {
	h := make(map[string]any, len(x.HeldHeaders))
	for k, v := range x.HeldHeaders {
		h[k] = v
	}
	return map[string]any{
		"review_id": x.ReviewID, "status": x.Status, "code": x.Code, "stage": x.Stage,
		"reason": x.Reason, "location": x.Location, "source_interface": x.Interface,
		"message_id": x.MessageID, "correlation_id": x.CorrelationID, "control_id": x.ControlID,
		"message_type": x.MessageType, "patient_key": x.PatientKey, "held_at": millis(x.HeldAt),
		"decided_by": x.DecidedBy, "decided_at": millis(x.DecidedAt), "decision_reason": x.DecisionReason,
		"held_topic": x.HeldTopic, "held_key": nonNil(x.HeldKey), "held_value": nonNil(x.HeldValue),
		"held_headers": h,
	}
}

func reviewFromNative(m map[string]any) Review {
	r := Review{
		ReviewID: str(m, "review_id"), Status: str(m, "status"), Code: str(m, "code"), Stage: str(m, "stage"),
		Reason: str(m, "reason"), Location: str(m, "location"), Interface: str(m, "source_interface"),
		MessageID: str(m, "message_id"), CorrelationID: str(m, "correlation_id"), ControlID: str(m, "control_id"),
		MessageType: str(m, "message_type"), PatientKey: str(m, "patient_key"), HeldAt: timeOf(m, "held_at"),
		DecidedBy: str(m, "decided_by"), DecidedAt: timeOf(m, "decided_at"), DecisionReason: str(m, "decision_reason"),
		HeldTopic: str(m, "held_topic"), HeldKey: bytesOf(m, "held_key"), HeldValue: bytesOf(m, "held_value"),
	}
	if h, ok := m["held_headers"].(map[string]any); ok {
		r.HeldHeaders = make(map[string]string, len(h))
		for k, v := range h {
			if s, ok := v.(string); ok {
				r.HeldHeaders[k] = s
			}
		}
	}
	return r
}
