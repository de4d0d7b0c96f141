package stages

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/topics"
)

// DeadLetter sends a record that failed permanently to the stage's
// dead-letter topic, with the reason, beside whatever outputs the
// processor gave with the error (an invalid outcome, say), all in the same
// transaction that moves the stage past the record, and lets the stage
// carry on: the error is consumed here.
func DeadLetter(stage string, serde *avro.Serde, now func() time.Time, m *Metrics, log *slog.Logger) Middleware {
	return func(next Processor) Processor {
		return wrap(next, func(ctx context.Context, in Envelope) ([]Envelope, error) {
			outs, err := next.Process(ctx, in)
			if err == nil || KindOf(err) != KindPermanent {
				return outs, err
			}
			iface := in.Headers.Get(topics.HeaderInterface)
			code, loc, text := Describe(err)
			log.Info("record dead-lettered", "interface", iface, "topic", in.Topic, "partition", in.Partition, "offset", in.Offset, "code", code)
			m.Failed.WithLabelValues(stage, iface, code).Inc()
			m.DeadLettered.WithLabelValues(stage, iface).Inc()
			at := now().UTC()
			dl := &avro.DeadLetter{
				Stage:             stage,
				ErrorCode:         code,
				ErrorLocation:     loc,
				ErrorText:         text,
				ErrorDetail:       DetailOf(err), // the value only: never a header
				MessageID:         in.Headers.Get(topics.HeaderMessageID),
				CorrelationID:     in.Headers.Get(topics.HeaderCorrelationID),
				Interface:         iface,
				OriginalTopic:     in.Topic,
				OriginalPartition: in.Partition,
				OriginalOffset:    in.Offset,
				OriginalKey:       in.Key,
				OriginalValue:     in.Value,
				At:                at,
			}
			for _, h := range in.Headers {
				dl.OriginalHeaders = append(dl.OriginalHeaders, avro.Header{Key: h.Key, Value: h.Value})
			}
			return append(outs, DeadLetterEnvelope(serde, dl, in.Key, in.Headers.Derive(stage, at))), nil
		})
	}
}

// DeadLetterEnvelope is dl as a record on its stage's dead-letter topic:
// the DeadLetter in Avro, with key, and headers that say why and where from
// (careflow.dlq.*) beside base, so that a person can see why without
// decoding it. Ingest's dead letters, which come from a socket rather than
// a topic, are made here too. A destination's own words (dl.ErrorDetail)
// stay in the value.
func DeadLetterEnvelope(serde *avro.Serde, dl *avro.DeadLetter, key []byte, base Headers) Envelope {
	h := base
	h.Set(topics.HeaderDLQStage, dl.Stage)
	h.Set(topics.HeaderDLQCode, dl.ErrorCode)
	h.Set(topics.HeaderDLQLocation, dl.ErrorLocation)
	h.Set(topics.HeaderDLQText, dl.ErrorText)
	if dl.OriginalTopic != "" {
		h.Set(topics.HeaderDLQTopic, dl.OriginalTopic)
		h.Set(topics.HeaderDLQPartition, strconv.Itoa(int(dl.OriginalPartition)))
		h.Set(topics.HeaderDLQOffset, strconv.FormatInt(dl.OriginalOffset, 10))
	}
	value, err := serde.Encode(dl)
	if err != nil {
		// The DeadLetter schema is ours; failing to encode it is a bug,
		// but the original bytes must still land somewhere.
		value = dl.OriginalValue
		h.Set(topics.HeaderDLQText, dl.ErrorText+" (dead letter not encodable: "+err.Error()+")")
	}
	return Envelope{Topic: topics.DeadLetter(dl.Stage), Key: key, Value: value, Headers: h}
}
