// This file is the direct Avro codec for RawMessage and DeliveryOutcome in
// the embedded schemas (see fast_event.go for why and when it is used).
// Ingest writes a RawMessage per message, validate and normalise read it;
// route and deliver write an outcome per destination.

package avro

import (
	"bytes"
	"time"
)

// decodeDirect decodes a body written in the embedded schema of v's type
// when this file or fast_event.go has a direct codec for it; done is false
// for the types left to goavro.
func decodeDirect(body []byte, v any) (done bool, err error) {
	switch r := v.(type) {
	case *ClinicalEvent:
		return true, decodeEvent(body, r)
	case *RawMessage:
		return true, decodeRaw(body, r)
	case *DeliveryOutcome:
		return true, decodeOutcome(body, r)
	}
	return false, nil
}

func appendRaw(b []byte, r *RawMessage) []byte {
	b = appendStrings(b, r.MessageID, r.CorrelationID, r.IdempotencyKey, r.Interface, r.Transport)
	b = appendLong(b, millis(r.ReceivedAt))
	b = appendLong(b, int64(len(r.Payload)))
	b = append(b, r.Payload...)
	return appendStrings(b, r.MessageType, r.TriggerEvent, r.ControlID, r.Version,
		r.SendingApplication, r.SendingFacility, r.PatientKey)
}

func decodeRaw(body []byte, m *RawMessage) error {
	// No shared copy: it would hold a second copy of the payload.
	r := &eventReader{b: body}
	*m = RawMessage{MessageID: r.str(), CorrelationID: r.str(), IdempotencyKey: r.str(), Interface: r.str(), Transport: r.str()}
	m.ReceivedAt = r.time()
	m.Payload = r.bytes()
	m.MessageType, m.TriggerEvent, m.ControlID, m.Version = r.str(), r.str(), r.str(), r.str()
	m.SendingApplication, m.SendingFacility, m.PatientKey = r.str(), r.str(), r.str()
	return r.end()
}

func appendOutcome(b []byte, o *DeliveryOutcome) []byte {
	b = appendStrings(b, o.OutcomeID, o.MessageID, o.CorrelationID, o.IdempotencyKey, o.Interface,
		o.Destination, o.Stage, o.Status)
	b = appendLong(b, int64(int32(o.Attempt)))
	b = appendStrings(b, o.ControlID, o.AckCode)
	b = appendLong(b, int64(int32(o.HTTPStatus)))
	b = appendStrings(b, o.ErrorCode, o.ErrorLocation, o.ErrorText, o.MessageType, o.TriggerEvent)
	b = appendLong(b, millis(o.IngestTime))
	b = appendLong(b, millis(o.At))
	return appendLong(b, o.LatencyMillis)
}

func decodeOutcome(body []byte, o *DeliveryOutcome) error {
	r := &eventReader{b: body, src: string(body)}
	*o = DeliveryOutcome{OutcomeID: r.str(), MessageID: r.str(), CorrelationID: r.str(), IdempotencyKey: r.str(),
		Interface: r.str(), Destination: r.str(), Stage: r.str(), Status: r.str()}
	o.Attempt = int(int32(r.long()))
	o.ControlID, o.AckCode = r.str(), r.str()
	o.HTTPStatus = int(int32(r.long()))
	o.ErrorCode, o.ErrorLocation, o.ErrorText, o.MessageType, o.TriggerEvent = r.str(), r.str(), r.str(), r.str(), r.str()
	o.IngestTime, o.At = r.time(), r.time()
	o.LatencyMillis = r.long()
	return r.end()
}

// time reads a timestamp-millis; 0 is the zero time.
func (r *eventReader) time() time.Time {
	if ms := r.long(); ms != 0 {
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
}

// bytes reads an Avro bytes value as a copy (the record buffer may be
// reused by the Kafka client); empty reads back as nil.
func (r *eventReader) bytes() []byte {
	n := r.long()
	if r.err != nil || n == 0 {
		return nil
	}
	if n < 0 || n > int64(len(r.b)) {
		r.err = errShort
		return nil
	}
	out := bytes.Clone(r.b[:n])
	r.b, r.off = r.b[n:], r.off+int(n)
	return out
}

// end reports the first error, or trailing bytes.
func (r *eventReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		return errTrailing(len(r.b))
	}
	return r.err
}
