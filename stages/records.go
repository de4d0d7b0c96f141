package stages

// This file is the edge between Kafka records and envelopes, and the dead
// letter a failed record becomes.

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/topics"
)

// deadLetter wraps in as a DeadLetter record for this stage's DLQ topic.
func (r *Runner) deadLetter(in Envelope, err error) Envelope {
	code, loc, text := Describe(err)
	dl := &avro.DeadLetter{
		Stage:             r.cfg.Stage,
		ErrorCode:         code,
		ErrorLocation:     loc,
		ErrorText:         text,
		ErrorDetail:       DetailOf(err), // the value only: never a header
		MessageID:         in.Headers.Get(topics.HeaderMessageID),
		CorrelationID:     in.Headers.Get(topics.HeaderCorrelationID),
		Interface:         in.Headers.Get(topics.HeaderInterface),
		OriginalTopic:     in.Topic,
		OriginalPartition: in.Partition,
		OriginalOffset:    in.Offset,
		OriginalKey:       in.Key,
		OriginalValue:     in.Value,
		At:                r.cfg.Now().UTC(),
	}
	for _, h := range in.Headers {
		dl.OriginalHeaders = append(dl.OriginalHeaders, avro.Header{Key: h.Key, Value: h.Value})
	}
	h := in.Headers.Derive(r.cfg.Stage, r.cfg.Now())
	h.Set(topics.HeaderDLQStage, r.cfg.Stage)
	h.Set(topics.HeaderDLQCode, code)
	h.Set(topics.HeaderDLQLocation, loc)
	h.Set(topics.HeaderDLQText, text)
	h.Set(topics.HeaderDLQTopic, in.Topic)
	h.Set(topics.HeaderDLQPartition, strconv.Itoa(int(in.Partition)))
	h.Set(topics.HeaderDLQOffset, strconv.FormatInt(in.Offset, 10))
	value, encErr := r.cfg.Serde.Encode(dl)
	if encErr != nil {
		// The DeadLetter schema is ours; failing to encode it is a bug,
		// but the original bytes must still land somewhere.
		value = in.Value
		h.Set(topics.HeaderDLQText, text+" (dead letter not encodable: "+encErr.Error()+")")
	}
	return Envelope{Topic: topics.DeadLetter(r.cfg.Stage), Key: in.Key, Value: value, Headers: h}
}

func toEnvelope(rec *kgo.Record) Envelope {
	h := make(Headers, len(rec.Headers))
	for i, x := range rec.Headers {
		h[i] = Header{Key: x.Key, Value: x.Value}
	}
	return Envelope{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: h, Partition: rec.Partition, Offset: rec.Offset}
}

// ToRecord converts an output envelope to a Kafka record.
func ToRecord(e Envelope) *kgo.Record {
	rec := &kgo.Record{Topic: e.Topic, Key: e.Key, Value: e.Value}
	if len(e.Headers) > 0 {
		rec.Headers = make([]kgo.RecordHeader, len(e.Headers))
		for i, h := range e.Headers {
			rec.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return rec
}
