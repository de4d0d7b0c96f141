package stages

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/careflow-health/careflow/avro"
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
// the message, and why. Code, Location and Err are careflow's own words and
// never hold patient data: they go to logs, headers, outcomes and metrics.
type Error struct {
	Kind     Kind
	Code     string // stable, machine-readable (e.g. "hl7.required_field", "ack.AE")
	Location string // HL7 location such as "PID-7", or "" when none
	Err      error
	// Detail is outside free text: what a destination or sender said in
	// its own words (MSA-3, an ERR segment's text, an HTTP body excerpt).
	// It often names the patient, so it is kept only in the dead letter's
	// value (avro.DeadLetter.ErrorDetail): never in Error(), a header, an
	// outcome, a metric label or a log line. Attach it with WithDetail.
	Detail string
}

func (e *Error) Error() string {
	if e.Location != "" {
		return fmt.Sprintf("%s at %s: %v", e.Code, e.Location, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Code, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Codes of an input record that cannot be decoded, of an output that
// cannot be encoded, and of failures no stage classified. Every stage uses
// these, so that one code means one thing on every dead letter.
const (
	CodeDecode            = "avro.decode"             // not a record of the expected type: never will be
	CodeSchemaUnavailable = "avro.schema_unavailable" // its writer schema could not be fetched: the registry may be down
	CodeEncode            = "avro.encode"             // an output record could not be encoded (retried)
	CodeParse             = "hl7.parse"               // the HL7 parser refused a message without a code of its own
	CodeInternal          = "internal"                // an error without a code of its own (retried)
	CodePanic             = "internal.panic"          // the stage panicked on the record (a bug): dead-lettered
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

// WithDetail attaches outside free text (see Error.Detail) to the *Error in
// err's chain and returns err; an err without one is wrapped as a
// transient *Error (as KindOf would classify it) with code "internal".
// An empty detail leaves err as it is.
func WithDetail(err error, detail string) error {
	if err == nil || detail == "" {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		e.Detail = detail
		return err
	}
	return &Error{Kind: KindTransient, Code: CodeInternal, Err: err, Detail: detail}
}

// DetailOf returns the outside free text attached to err, made valid UTF-8
// and cut on a character boundary to at most avro.MaxErrorDetail bytes:
// what a dead letter's ErrorDetail holds. It is "" when there is none.
func DetailOf(err error) string {
	var e *Error
	if !errors.As(err, &e) || e.Detail == "" {
		return ""
	}
	return truncateUTF8(strings.ToValidUTF8(e.Detail, "\uFFFD"), avro.MaxErrorDetail)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// KindOf classifies err; an unclassified error is transient, because
// retrying a mystery is safer than dead-lettering a good message. A nil
// error has no kind (0).
func KindOf(err error) Kind {
	if err == nil {
		return 0 // no failure, no kind
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTransient
}

// Describe returns the code, location and text to record for err: careflow's
// own words, never an *Error's Detail (see DetailOf).
func Describe(err error) (code, location, text string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Location, e.Err.Error()
	}
	return CodeInternal, "", err.Error()
}
