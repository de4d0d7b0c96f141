// Package stages is the frame every stage runs in: the record envelope a
// stage handles, the Processor interface it implements, the error kinds
// that decide what happens to a record that fails, the middleware that
// recovers, retries, dead-letters and measures, and the Runner that drives
// a processor inside Kafka transactions. Each subpackage (stages/ingest,
// stages/validate, ...) holds one stage; stages/identity, stages/conformance,
// stages/lifecycle and stages/audit are the rules and the audit trail they
// share. No stage imports another.
package stages

import (
	"time"

	"github.com/careflow-health/careflow/topics"
)

// Envelope is one record as a stage sees it. The runner converts to and
// from kgo.Record at the edge; stages never touch the Kafka client.
type Envelope struct {
	Topic   string // the topic it came from (input) or goes to (output)
	Key     []byte // patient key: one patient's records share a partition
	Value   []byte // Confluent-framed Avro
	Headers Headers

	// Set by the runner on input records only.
	Partition int32
	Offset    int64
}

// Headers are a record's headers in order; keys may repeat in Kafka but
// careflow writes each once.
type Headers []Header

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Get returns the value of key, or "" when absent.
func (h Headers) Get(key string) string {
	for _, x := range h {
		if x.Key == key {
			return string(x.Value)
		}
	}
	return ""
}

// Set replaces key's value, or appends it.
func (h *Headers) Set(key, value string) {
	for i := range *h {
		if (*h)[i].Key == key {
			(*h)[i].Value = []byte(value)
			return
		}
	}
	*h = append(*h, Header{Key: key, Value: []byte(value)})
}

// Clone returns a copy that can be changed without touching h.
func (h Headers) Clone() Headers {
	out := make(Headers, len(h))
	copy(out, h)
	return out
}

// Derive returns the headers an output record of stage inherits from h: the
// same identity headers, plus the time the stage handled it.
func (h Headers) Derive(stage string, now time.Time) Headers {
	// Room for this stage's time and one more header a stage sets (the
	// destination, the outcome status), so neither reallocates.
	out := make(Headers, len(h), len(h)+2)
	copy(out, h)
	out.Set(topics.StageTime(stage), now.UTC().Format(topics.TimeFormat))
	return out
}

// IngestTime parses the ingest time header; zero when absent or malformed.
func (h Headers) IngestTime() time.Time {
	t, err := time.Parse(topics.TimeFormat, h.Get(topics.HeaderIngestTime))
	if err != nil {
		return time.Time{}
	}
	return t
}
