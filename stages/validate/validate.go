// Package validate is the stage between careflow.raw and careflow.valid. It
// checks each inbound message against the conformance rules of the
// interface it arrived on, suppresses resends by idempotency key, and
// forwards the RawMessage record unchanged.
//
// A message that fails a check is both reported and dead-lettered: Process
// returns a DeliveryOutcome (status invalid) for careflow.outcomes together
// with a stages.Permanent error, and the runner writes the outcome and the
// dead letter in one transaction. A resend is not an error: it yields only
// an outcome with status duplicate.
package validate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/conformance"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// Error codes of the records this stage rejects. Those from the HL7 parser
// (hl7.no_msh, hl7.bad_encoding, ...) pass through as the parser gives them.
const (
	CodeDecode           = stages.CodeDecode
	CodeSchema           = stages.CodeSchemaUnavailable
	CodeEncode           = stages.CodeEncode
	CodeParse            = stages.CodeParse
	CodeUnknownInterface = "config.unknown_interface"
	CodeMessageType      = conformance.CodeMessageType
	CodeVersion          = conformance.CodeVersion
	CodeRequired         = conformance.CodeRequired
)

// Rules are one inbound interface's conformance rules; ingest applies the
// same ones to answer `ack: validated` senders.
type Rules = conformance.Rules

// Config configures the stage.
type Config struct {
	// Interfaces holds the rules of each inbound interface, by name. A
	// message from an interface not listed is rejected.
	Interfaces map[string]Rules
	// Serde decodes RawMessage and encodes DeliveryOutcome. Required.
	Serde *avro.Serde
	// Now stamps outcomes and stage-time headers. Default: time.Now.
	Now func() time.Time
	// Dedup remembers the idempotency keys that passed. Required: the
	// runner supplies one rebuilt from careflow.valid; tests use
	// NewMemoryDedup.
	Dedup Deduper
	// Registerer receives the stage's metrics. Default: none (metrics are
	// counted but not exported).
	Registerer prometheus.Registerer
	// ReplyTo is each inbound interface's reply_to destination, by name.
	// A message that fails its rules and asked for an application
	// acknowledgement (enhanced mode, MSH-16 AL or ER) gets it from here:
	// AE (AR for a type or version the interface does not take) with the
	// ERR of the rule, MSA-2 its MSH-10.
	ReplyTo map[string]string
}

// Stage is the validate processor. It is safe for concurrent use if its
// Deduper is.
type Stage struct {
	serde *avro.Serde
	now   func() time.Time
	dedup Deduper
	rules map[string]*conformance.Checker
	reply map[string]string
	total *prometheus.CounterVec
}

var _ stages.Processor = (*Stage)(nil)

// Close implements stages.Processor; validate holds nothing to release: its dedup set is the engine's.
func (s *Stage) Close(context.Context) error { return nil }

// New checks cfg and returns the stage.
func New(cfg Config) (*Stage, error) {
	if cfg.Serde == nil {
		return nil, errors.New("validate: config: Serde is required")
	}
	if cfg.Dedup == nil {
		return nil, errors.New("validate: config: Dedup is required")
	}
	s := &Stage{serde: cfg.Serde, now: cfg.Now, dedup: cfg.Dedup, reply: cfg.ReplyTo,
		rules: make(map[string]*conformance.Checker, len(cfg.Interfaces))}
	if s.now == nil {
		s.now = time.Now
	}
	names := make([]string, 0, len(cfg.Interfaces))
	for name := range cfg.Interfaces {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c, err := conformance.New(cfg.Interfaces[name])
		if err != nil {
			return nil, fmt.Errorf("validate: config: interface %s: %w", name, err)
		}
		s.rules[name] = c
	}
	total, err := registerTotal(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.total = total
	return s, nil
}

// registerTotal creates careflow_validate_total, reusing the collector
// already registered by an earlier Stage on the same registry.
func registerTotal(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "careflow_validate_total",
		Help: "Messages validated, by inbound interface and result (valid, invalid, duplicate).",
	}, []string{"interface", "result"})
	c, err := stages.Register(reg, c)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	return c, nil
}

// Process validates one careflow.raw record. See the package doc for what
// it returns.
func (s *Stage) Process(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
	now := s.now()
	var raw avro.RawMessage
	if err := s.serde.DecodeContext(ctx, in.Value, &raw); err != nil {
		err = stages.DecodeError(fmt.Errorf("validate: decode raw record: %w", err))
		if stages.KindOf(err) != stages.KindPermanent {
			return nil, err
		}
		s.total.WithLabelValues("unknown", "invalid").Inc()
		return s.reject(in, nil, now, err)
	}

	label := raw.Interface
	rules, known := s.rules[raw.Interface]
	if !known {
		label = "unknown"
	}

	key := in.Headers.Get(topics.HeaderIdempotencyKey)
	if key == "" {
		key = raw.IdempotencyKey
	}
	// A key only enters the set once its message passed, so checking it
	// before parsing costs a resend nothing and cannot hide an invalid
	// message.
	if key != "" && s.dedup.Seen(in.Partition, key) {
		out, err := s.outcome(in, &raw, now, avro.StatusDuplicate, nil)
		if err != nil {
			return nil, err
		}
		s.total.WithLabelValues(label, "duplicate").Inc()
		return []stages.Envelope{out}, nil
	}

	if m, v, err := s.check(&raw, rules, known); err != nil {
		s.total.WithLabelValues(label, "invalid").Inc()
		outs, perm := s.reject(in, &raw, now, err)
		if v != nil && perm != nil && stages.KindOf(perm) == stages.KindPermanent {
			ack, aerr := s.appAck(in, &raw, m, v, now)
			if aerr != nil {
				return nil, aerr
			}
			outs = append(outs, ack...)
		}
		return outs, perm
	}
	if key != "" {
		s.dedup.Add(in.Partition, key)
	}
	s.total.WithLabelValues(label, "valid").Inc()
	h := in.Headers.Derive(topics.StageValidate, now)
	if key != "" && h.Get(topics.HeaderIdempotencyKey) == "" {
		// The dedup state is rebuilt from this header on careflow.valid,
		// so it must hold the key that was added.
		h.Set(topics.HeaderIdempotencyKey, key)
	}
	return []stages.Envelope{{Topic: topics.Valid, Key: in.Key, Value: in.Value, Headers: h}}, nil
}

// check applies the conformance checks in order and returns the first
// failure as a Permanent error, with the message and the rule it broke
// when it could be read.
func (s *Stage) check(raw *avro.RawMessage, rules *conformance.Checker, known bool) (*hl7v2.Message, *conformance.Violation, error) {
	if raw.Transport == avro.TransportFHIR {
		// Ingest validated it before answering; a replay of careflow.raw,
		// or a record another writer put there, is checked again by the
		// same rules.
		return nil, nil, checkFHIR(raw, known)
	}
	// Read the message in the character set ingest resolved, as normalise
	// will: in a multi-byte set a raw trail byte can look like a delimiter.
	text, _, err := hl7v2.DecodeMessage(raw.Payload, raw.Charset, "")
	if err == nil {
		var m *hl7v2.Message
		if m, err = hl7v2.Parse(text); err == nil {
			v, err := s.checkParsed(raw, m, rules, known)
			return m, v, err
		}
	}
	return nil, nil, s.parseFailure(raw, err)
}

// checkFHIR validates a FHIR write by the FHIR R4 specification, as
// ingest did; an HL7 v2 interface's accept rules do not apply to it.
func checkFHIR(raw *avro.RawMessage, known bool) error {
	if !known {
		return stages.Permanent(CodeUnknownInterface, "", fmt.Errorf("validate: interface %q has no rules in the config", raw.Interface))
	}
	if _, err := fhir.Decode(raw.Payload); err != nil {
		code, loc := "fhir.invalid", ""
		var is *fhir.Issues
		if errors.As(err, &is) && len(is.Issues) > 0 {
			code, loc = "fhir."+string(is.Issues[0].Code), is.Issues[0].Expression
		}
		return stages.Permanent(code, loc, fmt.Errorf("validate: interface %s: %w", raw.Interface, err))
	}
	return nil
}

// parseFailure is the permanent error for a message that cannot be read.
func (s *Stage) parseFailure(raw *avro.RawMessage, err error) error {
	var pe *hl7v2.ParseError
	if errors.As(err, &pe) {
		return stages.Permanent(pe.Code, pe.Location, fmt.Errorf("validate: interface %s: %w", raw.Interface, err))
	}
	return stages.Permanent(CodeParse, "", fmt.Errorf("validate: interface %s: %w", raw.Interface, err))
}

// checkParsed applies the interface's rules to a parsed message.
func (s *Stage) checkParsed(raw *avro.RawMessage, m *hl7v2.Message, rules *conformance.Checker, known bool) (*conformance.Violation, error) {
	if !known {
		return nil, stages.Permanent(CodeUnknownInterface, "", fmt.Errorf("validate: interface %q has no rules in the config", raw.Interface))
	}
	if v := rules.Check(m); v != nil {
		return v, stages.Permanent(v.Code, v.Location, fmt.Errorf("validate: interface %s: %s", raw.Interface, v.Text))
	}
	return nil, nil
}

// appAck is the application acknowledgement of a message that broke rule
// v, when its sender asked for one and its interface has a reply_to: an
// ACK event on that destination's outbound topic (docs/workflows.md).
func (s *Stage) appAck(in stages.Envelope, raw *avro.RawMessage, m *hl7v2.Message, v *conformance.Violation, now time.Time) ([]stages.Envelope, error) {
	h := m.Header()
	dest := s.reply[raw.Interface]
	if dest == "" || hl7v2.AppAckRequested(h) == "" {
		return nil, nil
	}
	code := "AE"
	if v.Reject {
		code = "AR"
	}
	id := identity.OutcomeID(raw.MessageID, topics.StageValidate, "app-ack")
	ev := &avro.ClinicalEvent{EventID: id, CorrelationID: raw.CorrelationID, IdempotencyKey: id, EventType: "acknowledgment",
		MessageType: "ACK", TriggerEvent: h.TriggerEvent,
		Acknowledgment: &avro.Acknowledgment{Code: code, ControlID: h.ControlID, Text: v.Text,
			Errors: []avro.AckError{{Code: v.HL7Code, ApplicationCode: v.Code, Location: v.Location, Severity: "E", Text: v.Text}}},
		Provenance: avro.Provenance{Interface: raw.Interface, MessageID: id, IngestTime: now.UTC()}}
	b, err := s.serde.Encode(ev)
	if err != nil {
		return nil, stages.Transient(CodeEncode, fmt.Errorf("validate: encode application ACK for %s: %w", dest, err))
	}
	var hd stages.Headers
	hd.Set(topics.HeaderMessageID, id)
	hd.Set(topics.HeaderCorrelationID, raw.CorrelationID)
	hd.Set(topics.HeaderIdempotencyKey, id)
	hd.Set(topics.HeaderInterface, raw.Interface)
	hd.Set(topics.HeaderDestination, dest)
	hd.Set(topics.StageTime(topics.StageValidate), now.UTC().Format(topics.TimeFormat))
	return []stages.Envelope{{Topic: topics.Outbound(dest), Key: in.Key, Value: b, Headers: hd}}, nil
}

// reject returns the invalid outcome for in together with perm, so that
// the runner writes both. raw is nil when the record did not decode.
func (s *Stage) reject(in stages.Envelope, raw *avro.RawMessage, now time.Time, perm error) ([]stages.Envelope, error) {
	out, err := s.outcome(in, raw, now, avro.StatusInvalid, perm)
	if err != nil {
		return nil, err
	}
	return []stages.Envelope{out}, perm
}

// outcome builds the DeliveryOutcome record for in. Identity comes from
// raw when it decoded and from the headers otherwise, so that even an
// undecodable record can be traced.
func (s *Stage) outcome(in stages.Envelope, raw *avro.RawMessage, now time.Time, status string, cause error) (stages.Envelope, error) {
	o := avro.DeliveryOutcome{
		MessageID:      in.Headers.Get(topics.HeaderMessageID),
		CorrelationID:  in.Headers.Get(topics.HeaderCorrelationID),
		IdempotencyKey: in.Headers.Get(topics.HeaderIdempotencyKey),
		Interface:      in.Headers.Get(topics.HeaderInterface),
		IngestTime:     in.Headers.IngestTime(),
		Stage:          topics.StageValidate,
		Status:         status,
		At:             now.UTC(),
	}
	if raw != nil {
		o.MessageID, o.CorrelationID, o.Interface = raw.MessageID, raw.CorrelationID, raw.Interface
		if raw.IdempotencyKey != "" {
			o.IdempotencyKey = raw.IdempotencyKey
		}
		o.MessageType, o.TriggerEvent = raw.MessageType, raw.TriggerEvent
		if !raw.ReceivedAt.IsZero() {
			o.IngestTime = raw.ReceivedAt
		}
	}
	o.OutcomeID = identity.OutcomeID(o.MessageID, topics.StageValidate, status)
	if cause != nil {
		o.ErrorCode, o.ErrorLocation, o.ErrorText = stages.Describe(cause)
	}
	b, err := s.serde.Encode(&o)
	if err != nil {
		return stages.Envelope{}, stages.Transient(CodeEncode, fmt.Errorf("validate: encode %s outcome: %w", status, err))
	}
	return stages.Envelope{
		Topic:   topics.Outcomes,
		Key:     in.Key,
		Value:   b,
		Headers: in.Headers.Derive(topics.StageValidate, now),
	}, nil
}
