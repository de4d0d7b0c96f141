package stages

import (
	"errors"
	"fmt"

	"careflow/avro"
)

// Kind says what the runner does with a record whose processing failed.
type Kind int

const (
	// KindTransient: retry the same record with backoff; the fault is
	// expected to pass (timeout, connection refused, HL7 AR, HTTP 5xx).
	KindTransient Kind = iota + 1
	// KindPermanent: the record can never succeed as it is (bad HL7,
	// business rejection). Dead-letter it with the reason and move on.
	KindPermanent
	// KindUnavailable: the destination is down (breaker open). Do not skip
	// the record: pause the partition and try again later, so per-patient
	// order holds.
	KindUnavailable
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindPermanent:
		return "permanent"
	case KindUnavailable:
		return "unavailable"
	}
	return "unknown"
}

// Error is a processing failure a person can act on: which code, where in
// the message, and why. It never holds patient data.
type Error struct {
	Kind     Kind
	Code     string // stable, machine-readable (e.g. "hl7.required_field", "ack.AE")
	Location string // HL7 location such as "PID-7", or "" when none
	Err      error
}

func (e *Error) Error() string {
	if e.Location != "" {
		return fmt.Sprintf("%s at %s: %v", e.Code, e.Location, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Code, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Codes of an input record that cannot be decoded.
const (
	CodeDecode            = "avro.decode"             // not a record of the expected type: never will be
	CodeSchemaUnavailable = "avro.schema_unavailable" // its writer schema could not be fetched: the registry may be down
)

// DecodeError classifies a failure to decode an input record, the same way
// for every stage: a schema id the registry could not resolve is transient
// (the record is not proven bad, and dead-lettering everything while the
// registry is down would be worse than waiting); anything else is
// permanent.
func DecodeError(err error) error {
	var unknown *avro.UnknownSchemaError
	if errors.As(err, &unknown) {
		return Transient(CodeSchemaUnavailable, err)
	}
	return Permanent(CodeDecode, "", err)
}

// Permanent returns a dead-letter-worthy error.
func Permanent(code, location string, err error) error {
	return &Error{Kind: KindPermanent, Code: code, Location: location, Err: err}
}

// Transient returns an error to retry.
func Transient(code string, err error) error {
	return &Error{Kind: KindTransient, Code: code, Err: err}
}

// Unavailable returns an error that pauses the input until the destination
// recovers.
func Unavailable(code string, err error) error {
	return &Error{Kind: KindUnavailable, Code: code, Err: err}
}

// KindOf classifies err; an unclassified error is transient, because
// retrying a mystery is safer than dead-lettering a good message.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransient
}

// Describe returns the code, location and text to record for err.
func Describe(err error) (code, location, text string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Location, e.Err.Error()
	}
	return "internal", "", err.Error()
}
