// Package normalise is the stage between careflow.valid and careflow.events:
// it decodes each validated HL7 v2 message to UTF-8 (in the character set
// ingest resolved, avro.RawMessage.Charset), parses it and maps it to the
// canonical avro.ClinicalEvent (see Map and docs/canonical-model.md), whose
// strings are therefore always UTF-8.
//
// A message that cannot be mapped is both reported and dead-lettered:
// Process returns a DeliveryOutcome (status invalid) for careflow.outcomes
// together with a stages.Permanent error, and the runner writes the outcome
// and the dead letter in one transaction.
package normalise

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/codemap"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/ownership"
	"github.com/careflow-health/careflow/stages/patientindex"
	"github.com/careflow-health/careflow/topics"
)

// Error codes besides those Map returns. Parser codes (hl7.no_msh, ...)
// pass through as the parser gives them.
const (
	CodeDecode = stages.CodeDecode
	CodeSchema = stages.CodeSchemaUnavailable
	CodeEncode = stages.CodeEncode
	CodeParse  = stages.CodeParse
)

// Config configures the stage.
type Config struct {
	// Serde decodes RawMessage and encodes ClinicalEvent and
	// DeliveryOutcome. Required.
	Serde *avro.Serde
	// Now stamps outcomes and stage-time headers. Default: time.Now.
	Now func() time.Time
	// Identity is each inbound interface's identifier policy, by name:
	// a PID-3 identifier that fails its check digit raises
	// invalid_identifier (identity.go). An interface not listed has none.
	Identity map[string]identity.Policy
	// Ownership is the source-of-truth matrix (ownership.go). Default: none,
	// every update applies.
	Ownership *ownership.Matrix
	// Index is the patient index (stages/patientindex), which the
	// runner commits and aborts with each transaction and the engine
	// loads on assignment. nil: events keep ingest's key and nothing is
	// held for identity.
	Index *patientindex.Index
	// Codes are the code maps applied to coded fields, in order: the
	// first that knows a code maps it (codes.go). Default: none.
	Codes []codemap.Binding
	// FHIRSystems maps FHIR identifier systems to assigning authorities,
	// for FHIR writes (fhir.go). Default: the built-in NHS and CHI ones.
	FHIRSystems *fhir.Systems
	// Metrics receives careflow_exceptions_total,
	// careflow_reviews_held_total and careflow_unmapped_codes_total.
	// Default: none (counted but not
	// exported).
	Metrics prometheus.Registerer
}

// Stage is the normalise processor. It is safe for concurrent use.
type Stage struct {
	serde       *avro.Serde
	now         func() time.Time
	identity    map[string]identity.Policy
	fhirSystems *fhir.Systems
	index       *patientindex.Index
	ownership   *ownership.Matrix
	exceptions  *prometheus.CounterVec
	held        *prometheus.CounterVec

	codes         []codemap.Binding // codes.go
	unmappedCodes *prometheus.CounterVec
}

var _ stages.Processor = (*Stage)(nil)

// Close implements stages.Processor; normalise holds nothing to release.
func (s *Stage) Close(context.Context) error { return nil }

// New checks cfg and returns the stage.
func New(cfg Config) (*Stage, error) {
	if cfg.Serde == nil {
		return nil, errors.New("normalise: config: Serde is required")
	}
	exceptions, err := stages.Register(cfg.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "careflow_exceptions_total",
		Help: "Exceptions raised (careflow.exceptions), by code.",
	}, []string{"code"}))
	if err != nil {
		return nil, err
	}
	held, err := stages.Register(cfg.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "careflow_reviews_held_total",
		Help: "Messages held for a person to decide on (careflow.review), by code.",
	}, []string{"code"}))
	if err != nil {
		return nil, err
	}
	unmapped, err := stages.Register(cfg.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "careflow_unmapped_codes_total",
		Help: "Local codes no code map knows (unmapped_code), by map and inbound interface.",
	}, []string{"map", "interface"}))
	if err != nil {
		return nil, err
	}
	s := &Stage{serde: cfg.Serde, now: cfg.Now, identity: cfg.Identity, index: cfg.Index, ownership: cfg.Ownership, fhirSystems: cfg.FHIRSystems,
		exceptions: exceptions, held: held, codes: cfg.Codes, unmappedCodes: unmapped}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Process maps one careflow.valid record to one careflow.events record with
// the same key. See the package doc for failures.
func (s *Stage) Process(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
	now := s.now()
	var raw avro.RawMessage
	if err := s.serde.DecodeContext(ctx, in.Value, &raw); err != nil {
		err = stages.DecodeError(fmt.Errorf("normalise: decode raw record: %w", err))
		if stages.KindOf(err) != stages.KindPermanent {
			return nil, err
		}
		return s.reject(in, nil, now, err)
	}
	var m *hl7v2.Message // nil for a FHIR write
	var err error
	var ev *avro.ClinicalEvent
	if raw.Transport == avro.TransportFHIR {
		if ev, err = s.fhirEvent(&raw); err != nil {
			return s.reject(in, &raw, now, err)
		}
	} else {
		if m, err = parse(&raw); err != nil {
			code, loc := CodeParse, ""
			var pe *hl7v2.ParseError
			if errors.As(err, &pe) {
				code, loc = pe.Code, pe.Location
			}
			return s.reject(in, &raw, now, stages.Permanent(code, loc, fmt.Errorf("normalise: interface %s: %w", raw.Interface, err)))
		}
		if ev, err = Map(m, &raw); err != nil {
			return s.reject(in, &raw, now, err)
		}
	}
	h := in.Headers.Derive(topics.StageNormalise, now)
	key := in.Key
	approved := approvedFor(in.Headers)
	var dec patientindex.Decision
	if s.index != nil {
		dec, err = s.index.Decide(s.identityMessage(m, &raw, ev, in), h)
		if err != nil {
			return nil, stages.Transient(CodeEncode, fmt.Errorf("normalise: interface %s: %w", raw.Interface, err))
		}
		if x := dec.Hold; x != nil {
			return s.hold(in, &raw, key, x.Code, x.Location, x.Reason, h, now)
		}
		if dec.Key != "" {
			key = []byte(dec.Key)
		}
		putSurvivorFirst(ev, dec.Survivor)
	}
	unmapped, hold, err := s.mapCodes(ctx, ev, &raw, key, h, now)
	if err != nil {
		return nil, err
	}
	if len(hold) > 0 && !approved(CodeUnmappedCode) {
		// The unmapped_code exceptions already say why, with the codes
		// and the review id: the hold adds the item only.
		field, _, _ := strings.Cut(hold[0], ":") // each reason starts with its field
		item, err := s.holdItem(in, &raw, key, CodeUnmappedCode, field, strings.Join(hold, "; "), h, now)
		if err != nil {
			return nil, err
		}
		return append([]stages.Envelope{item}, unmapped...), nil
	}
	var known ownership.Known
	if s.ownership != nil && s.index != nil { // reading the patient costs; only a matrix needs it
		known = s.index.Known(&dec)
	}
	out, od, err := s.applyOwnership(ev, &raw, key, h, now, known)
	if err != nil {
		return nil, err
	}
	if review := od.Review; len(review) > 0 && !approved(CodeFieldReview) {
		return s.hold(in, &raw, key, CodeFieldReview, review[0],
			fmt.Sprintf("%s from %s is an update the source-of-truth matrix sends to a person (ownership version %s)",
				strings.Join(review, ", "), raw.Interface, s.ownership.Version()), h, now)
	}
	if err := s.index.SetApplied(&dec, od.Applied, od.Fingerprints, h); err != nil {
		return nil, stages.Transient(CodeEncode, fmt.Errorf("normalise: interface %s: %w", raw.Interface, err))
	}
	excs, err := s.invalidIdentifiers(key, m, ev, &raw, h, now)
	if err != nil {
		return nil, err
	}
	out = append(append(out, excs...), unmapped...)
	for _, c := range dec.Changes {
		out = append(out, c.Record)
	}
	// Only now, with every output certain: a retry must not see its own
	// failed attempt's index changes.
	if s.index != nil {
		s.index.Apply(dec.Changes...)
	}
	return out, nil
}

// parse decodes raw.Payload to UTF-8 and parses it, so that the event
// holds only UTF-8. The character set is raw.Charset, as ingest resolved
// it; a record without one (written before ingest recorded it) is read by
// its MSH-18, else as UTF-8. Ingest has validated the bytes already, so a
// failure here means an old record or a replay of bytes ingest would now
// refuse: a permanent error with the parser's code and location.
func parse(raw *avro.RawMessage) (*hl7v2.Message, error) {
	payload, _, err := hl7v2.DecodeMessage(raw.Payload, raw.Charset, "")
	if err != nil {
		return nil, err
	}
	m, err := hl7v2.Parse(payload)
	if err != nil {
		return nil, err
	}
	// \X..\ escapes spell bytes that Unescape writes as they are.
	if err := m.ValidUTF8(); err != nil {
		return nil, err
	}
	return m, nil
}

// reject returns the invalid outcome for in together with perm, so that
// the runner writes both. raw is nil when the record did not decode.
func (s *Stage) reject(in stages.Envelope, raw *avro.RawMessage, now time.Time, perm error) ([]stages.Envelope, error) {
	o := avro.DeliveryOutcome{
		MessageID:      in.Headers.Get(topics.HeaderMessageID),
		CorrelationID:  in.Headers.Get(topics.HeaderCorrelationID),
		IdempotencyKey: in.Headers.Get(topics.HeaderIdempotencyKey),
		Interface:      in.Headers.Get(topics.HeaderInterface),
		IngestTime:     in.Headers.IngestTime(),
		Stage:          topics.StageNormalise,
		Status:         avro.StatusInvalid,
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
	o.OutcomeID = identity.OutcomeID(o.MessageID, topics.StageNormalise, avro.StatusInvalid)
	o.ErrorCode, o.ErrorLocation, o.ErrorText = stages.Describe(perm)
	b, err := s.serde.Encode(&o)
	if err != nil {
		return nil, stages.Transient(CodeEncode, fmt.Errorf("normalise: encode invalid outcome: %w", err))
	}
	return []stages.Envelope{{
		Topic:   topics.Outcomes,
		Key:     in.Key,
		Value:   b,
		Headers: in.Headers.Derive(topics.StageNormalise, now),
	}}, perm
}
