package stages

// This file is the edge between Kafka records and envelopes.

import "github.com/twmb/franz-go/pkg/kgo"

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
