// This file is the serde: Go record <-> Confluent wire format (magic byte
// 0, 4-byte big-endian schema id, Avro binary body).
//
// goavro has no reader/writer schema resolution, so evolution works in two
// steps: decode the body with the schema that wrote it (fetched from the
// registry by id and cached), then convert goavro's map to the Go struct by
// field name. A field the writer lacked takes its schema default; a field
// the reader does not know is skipped.

package avro

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Registry is the part of a schema registry the serde needs.
type Registry interface {
	// Register adds schema under subject and returns its id. It is
	// idempotent: registering the same schema again returns the same id.
	Register(ctx context.Context, subject, schema string) (id int, err error)
	// SchemaByID returns the text of the schema with id.
	SchemaByID(ctx context.Context, id int) (string, error)
}

// fetchTimeout bounds a registry lookup made under a context without a
// deadline, such as Decode's.
const fetchTimeout = 10 * time.Second

type kind int

const (
	kindRaw kind = iota
	kindEvent
	kindOutcome
	kindDeadLetter
	kindAudit
	kindException
	kindTransition
	kindReview
	numKinds
)

var kindNames = [numKinds]string{NameRawMessage, NameClinicalEvent, NameDeliveryOutcome, NameDeadLetter, NameAuditEvent, NameException, NameOrderTransition, NameReview}

// writer is a compiled schema that some record was written with.
type writer struct {
	name  string // the record's full name
	codec *goavro.Codec
}

// Serde encodes careflow's records in the Confluent wire format and decodes
// them whatever version of their schema wrote them. It is safe for
// concurrent use.
type Serde struct {
	reg   Registry
	ids   [numKinds]int
	codec [numKinds]*goavro.Codec

	mu      sync.RWMutex
	writers map[int]writer // by schema id; holds careflow's own schemas too
}

// NewSerde registers the embedded schemas with reg, each under its
// record's full name (see NameClinicalEvent and friends), and compiles
// them.
func NewSerde(ctx context.Context, reg Registry) (*Serde, error) {
	s := &Serde{reg: reg, writers: make(map[int]writer, numKinds)}
	for k := range numKinds {
		name := kindNames[k]
		codec, err := goavro.NewCodec(schemaTexts[name])
		if err != nil {
			return nil, fmt.Errorf("avro: compile embedded schema %s: %w", name, err)
		}
		id, err := reg.Register(ctx, name, schemaTexts[name])
		if err != nil {
			return nil, fmt.Errorf("avro: register schema %s: %w", name, err)
		}
		s.ids[k], s.codec[k] = id, codec
		s.writers[id] = writer{name: name, codec: codec}
	}
	return s, nil
}

// SchemaID returns the registry id that Encode writes for v's record type,
// or 0 when v is not one of careflow's record types.
func (s *Serde) SchemaID(v any) int {
	k, err := kindOf(v)
	if err != nil {
		return 0
	}
	return s.ids[k]
}

// Encode writes v, a *RawMessage, *ClinicalEvent, *DeliveryOutcome or
// *DeadLetter, in the Confluent wire format. Times are written in
// milliseconds; a zero time.Time is written as 0.
func (s *Serde) Encode(v any) ([]byte, error) {
	var (
		k      kind
		native map[string]any
		size   = 256
	)
	switch r := v.(type) {
	case *RawMessage:
		if r != nil {
			k, native, size = kindRaw, rawToNative(r), size+len(r.Payload)
		}
	case *ClinicalEvent:
		if r != nil {
			k, native, size = kindEvent, eventToNative(r), size*(2+len(r.Observations)+len(r.Orders))
		}
	case *DeliveryOutcome:
		if r != nil {
			k, native = kindOutcome, outcomeToNative(r)
		}
	case *DeadLetter:
		if r != nil {
			k, native, size = kindDeadLetter, deadLetterToNative(r), size+len(r.OriginalKey)+len(r.OriginalValue)
		}
	case *AuditEvent:
		if r != nil {
			k, native = kindAudit, auditToNative(r)
		}
	case *Exception:
		if r != nil {
			k, native = kindException, exceptionToNative(r)
		}
	case *OrderTransition:
		if r != nil {
			k, native = kindTransition, transitionToNative(r)
		}
	case *Review:
		if r != nil {
			k, native, size = kindReview, reviewToNative(r), size+len(r.HeldKey)+len(r.HeldValue)
		}
	}
	if native == nil {
		return nil, fmt.Errorf("avro: encode %T: %w", v, ErrUnsupportedType)
	}
	b, _ := new(sr.ConfluentHeader).AppendEncode(make([]byte, 0, size), s.ids[k], nil) // never fails
	b, err := s.codec[k].BinaryFromNative(b, native)
	if err != nil {
		return nil, fmt.Errorf("avro: encode %s: %w", kindNames[k], err)
	}
	return b, nil
}

// Decode reads b, written in the Confluent wire format by any version of
// v's schema, into v (a pointer to one of careflow's record types). An id it
// has not seen is looked up in the registry, waiting at most 10s; use
// DecodeContext to choose the deadline.
//
// Errors: ErrNotAvro, *UnknownSchemaError, *WrongTypeError, ErrMalformed,
// ErrUnsupportedType.
func (s *Serde) Decode(b []byte, v any) error {
	return s.DecodeContext(context.Background(), b, v)
}

// DecodeContext is Decode with ctx bounding a registry lookup; without a
// deadline in ctx, a lookup waits at most 10s.
func (s *Serde) DecodeContext(ctx context.Context, b []byte, v any) error {
	k, err := kindOf(v)
	if err != nil {
		return fmt.Errorf("avro: decode into %T: %w", v, err)
	}
	id, body, err := new(sr.ConfluentHeader).DecodeID(b)
	if err != nil {
		return ErrNotAvro
	}
	w, err := s.writer(ctx, id)
	if err != nil {
		return err
	}
	if w.name != kindNames[k] {
		return &WrongTypeError{ID: id, Got: w.name, Want: kindNames[k]}
	}
	native, rest, err := w.codec.NativeFromBinary(body)
	if err != nil {
		return fmt.Errorf("%w: %s with schema id %d: %w", ErrMalformed, w.name, id, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %s with schema id %d: %d bytes left after the record", ErrMalformed, w.name, id, len(rest))
	}
	m, ok := native.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: %s with schema id %d: body is %T, not a record", ErrMalformed, w.name, id, native)
	}
	switch r := v.(type) {
	case *RawMessage:
		*r = rawFromNative(m)
	case *ClinicalEvent:
		*r = eventFromNative(m)
	case *DeliveryOutcome:
		*r = outcomeFromNative(m)
	case *DeadLetter:
		*r = deadLetterFromNative(m)
	case *AuditEvent:
		*r = auditFromNative(m)
	case *Exception:
		*r = exceptionFromNative(m)
	case *OrderTransition:
		*r = transitionFromNative(m)
	case *Review:
		*r = reviewFromNative(m)
	}
	return nil
}

// writer returns the compiled schema with id, from the cache or else from
// the registry. Failures are not cached: a registry that was down may be
// back for the next record.
func (s *Serde) writer(ctx context.Context, id int) (writer, error) {
	s.mu.RLock()
	w, ok := s.writers[id]
	s.mu.RUnlock()
	if ok {
		return w, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
	}
	text, err := s.reg.SchemaByID(ctx, id)
	if err != nil {
		return writer{}, &UnknownSchemaError{ID: id, Err: err}
	}
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return writer{}, &UnknownSchemaError{ID: id, Err: fmt.Errorf("registry schema does not compile: %w", err)}
	}
	name, err := recordName(text)
	if err != nil {
		return writer{}, &UnknownSchemaError{ID: id, Err: err}
	}
	w = writer{name: name, codec: codec}
	s.mu.Lock()
	s.writers[id] = w
	s.mu.Unlock()
	return w, nil
}

// recordName returns the full name of the record schema text declares, or
// the type name for a schema that is not a record.
func recordName(text string) (string, error) {
	var top struct {
		Type      any    `json:"type"`
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	if err := json.Unmarshal([]byte(text), &top); err != nil {
		return "", fmt.Errorf("registry schema is not a JSON object: %w", err)
	}
	if top.Name == "" {
		return fmt.Sprint(top.Type), nil
	}
	if strings.Contains(top.Name, ".") || top.Namespace == "" { // a dotted name is already full
		return top.Name, nil
	}
	return top.Namespace + "." + top.Name, nil
}

// kindOf tells which record type v points to.
func kindOf(v any) (kind, error) {
	switch r := v.(type) {
	case *RawMessage:
		if r != nil {
			return kindRaw, nil
		}
	case *ClinicalEvent:
		if r != nil {
			return kindEvent, nil
		}
	case *DeliveryOutcome:
		if r != nil {
			return kindOutcome, nil
		}
	case *DeadLetter:
		if r != nil {
			return kindDeadLetter, nil
		}
	case *AuditEvent:
		if r != nil {
			return kindAudit, nil
		}
	case *Exception:
		if r != nil {
			return kindException, nil
		}
	case *OrderTransition:
		if r != nil {
			return kindTransition, nil
		}
	case *Review:
		if r != nil {
			return kindReview, nil
		}
	}
	return 0, ErrUnsupportedType
}
