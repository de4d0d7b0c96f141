// This file defines the errors a caller of the serde can branch on.

package avro

import (
	"errors"
	"fmt"
)

var (
	// ErrNotAvro reports bytes that do not start with the Confluent wire
	// format header (magic byte 0 and a 4-byte schema id).
	ErrNotAvro = errors.New("avro: not in Confluent wire format (no magic byte 0 or shorter than 5 bytes)")

	// ErrMalformed reports an Avro body that does not decode with the
	// schema its header names: truncated, trailing bytes, or garbage.
	ErrMalformed = errors.New("avro: malformed record body")

	// ErrUnsupportedType reports a value that is not a pointer to one of
	// careflow's record types.
	ErrUnsupportedType = errors.New("avro: unsupported type (want *RawMessage, *ClinicalEvent, *DeliveryOutcome, *DeadLetter, *AuditEvent, *Exception, *OrderTransition or *Review)")
)

// UnknownSchemaError reports a schema id that neither the serde nor the
// registry could resolve. Err is the registry's answer, which tells a
// missing id (permanent) from an unreachable registry (worth retrying).
type UnknownSchemaError struct {
	ID  int
	Err error
}

func (e *UnknownSchemaError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("avro: schema id %d is unknown", e.ID)
	}
	return fmt.Sprintf("avro: schema id %d is unknown: %v", e.ID, e.Err)
}

// Unwrap returns the registry's error.
func (e *UnknownSchemaError) Unwrap() error { return e.Err }

// WrongTypeError reports a record whose writer schema is another record
// than the one the caller asked to decode into, such as a DeadLetter read
// as a ClinicalEvent.
type WrongTypeError struct {
	ID   int    // the schema id in the record's header
	Got  string // full name of the writer schema's record
	Want string // full name of the record the caller decodes into
}

func (e *WrongTypeError) Error() string {
	return fmt.Sprintf("avro: record with schema id %d is %s, not %s", e.ID, e.Got, e.Want)
}
