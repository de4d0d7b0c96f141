// Package deliver is the last stage: for one destination it renders each
// routed event in the destination's format, sends it through a
// circuit-broken connector and records every attempt and result as a
// DeliveryOutcome. Delivery to a third party is at-least-once: a crash
// between the send and the commit resends, with the same control id, so
// the receiver can drop the duplicate.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/deliver/render"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// Destination is one subscriber and how to reach it.
type Destination struct {
	Name      string
	Target    render.Target // format and HL7 envelope
	Connector Connector
	// Fields is the canonical fields this destination may receive
	// (CompileFields); everything else is removed before rendering. nil
	// sends every field.
	Fields *Fields
	// FHIRSystems are the identifier systems a fhir destination's
	// resources are written with. Default: the built-in ones.
	FHIRSystems *fhir.Systems
	// FHIRPatientAuthorities key each Patient's conditional update by the
	// most trusted identifier (identity.trust's authorities, in order).
	FHIRPatientAuthorities []string
	// BreakerFailures consecutive transient failures open the breaker.
	// Default: 5.
	BreakerFailures uint32
	// BreakerOpenFor is how long the breaker stays open before one trial
	// send. Default: 30s.
	BreakerOpenFor time.Duration
}

// Config wires a deliver stage for one destination.
type Config struct {
	Destination Destination
	Serde       *avro.Serde
	Dedup       *stages.Dedup // event ids delivered, rebuilt from outcomes; nil disables
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *Metrics
}

// Stage delivers to one destination.
type Stage struct {
	cfg     Config
	breaker *gobreaker.CircuitBreaker[Result]
	log     *slog.Logger

	mu       sync.Mutex
	attempts map[string]int // event id → attempts so far, while retrying
}

// Metrics are the destination-level series.
type Metrics struct {
	Results  *prometheus.CounterVec   // destination, result
	Breaker  *prometheus.GaugeVec     // destination: 0 closed, 1 half-open, 2 open
	EndToEnd *prometheus.HistogramVec // destination: ingest → delivered
	Attempt  *prometheus.HistogramVec // destination: one send's round trip
}

// NewMetrics creates and registers (when reg is not nil) the series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_deliver_results_total", Help: "Delivery attempts by result (delivered, rejected, retrying, duplicate).",
		}, []string{"destination", "result"}),
		Breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "careflow_deliver_breaker_state", Help: "Circuit breaker state per destination: 0 closed, 1 half-open, 2 open.",
		}, []string{"destination"}),
		EndToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "careflow_delivery_latency_seconds", Help: "Time from ingest to acknowledged delivery.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"destination"}),
		Attempt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "careflow_deliver_attempt_seconds", Help: "Round trip of one send, until the ACK or HTTP response.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"destination"}),
	}
	m.Results, m.Breaker = stages.MustRegister(reg, m.Results), stages.MustRegister(reg, m.Breaker)
	m.EndToEnd, m.Attempt = stages.MustRegister(reg, m.EndToEnd), stages.MustRegister(reg, m.Attempt)
	return m
}

// New builds the stage and its breaker.
func New(cfg Config) (*Stage, error) {
	d := cfg.Destination
	if d.Name == "" || d.Connector == nil || cfg.Serde == nil {
		return nil, errors.New("deliver: destination name, connector and serde are required")
	}
	if d.BreakerFailures == 0 {
		d.BreakerFailures = 5
	}
	if d.BreakerOpenFor <= 0 {
		d.BreakerOpenFor = 30 * time.Second
	}
	cfg.Destination = d
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Stage{cfg: cfg, attempts: map[string]int{}, log: cfg.Logger.With("stage", topics.StageDeliver, "destination", d.Name)}
	s.breaker = gobreaker.NewCircuitBreaker[Result](gobreaker.Settings{
		Name:        d.Name,
		MaxRequests: 1,
		Timeout:     d.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= d.BreakerFailures },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			s.log.Warn("destination breaker changed state", "from", from.String(), "to", to.String())
			cfg.Metrics.Breaker.WithLabelValues(d.Name).Set(float64(to))
		},
		// A cancelled context is our shutdown, not the destination's fault.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	cfg.Metrics.Breaker.WithLabelValues(d.Name).Set(0)
	return s, nil
}

// Close implements stages.Processor: it closes the destination's
// connector, after the stage's last send.
func (s *Stage) Close(ctx context.Context) error { return s.cfg.Destination.Connector.Close(ctx) }

// BreakerState reports the breaker's state (for tests and the admin page).
func (s *Stage) BreakerState() gobreaker.State { return s.breaker.State() }

// unavailable carries the breaker's open interval to the runner.
type unavailable struct{ after time.Duration }

func (u unavailable) Error() string             { return "destination unavailable: circuit breaker open" }
func (u unavailable) RetryAfter() time.Duration { return u.after }

// Process sends one routed event.
func (s *Stage) Process(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
	dest := s.cfg.Destination
	var ev avro.ClinicalEvent
	if err := s.cfg.Serde.DecodeContext(ctx, in.Value, &ev); err != nil {
		return nil, stages.DecodeError(fmt.Errorf("destination %s: decode event: %w", dest.Name, err))
	}
	dest.Fields.Apply(&ev) // least data: nothing outside the profile is rendered
	if s.cfg.Dedup != nil && s.cfg.Dedup.Seen(in.Partition, ev.EventID) {
		// A replay of something already delivered (a torn commit
		// upstream): count it, do not send it again.
		s.cfg.Metrics.Results.WithLabelValues(dest.Name, avro.StatusDuplicate).Inc()
		return nil, nil
	}
	controlID := identity.ControlID(ev.EventID, dest.Name)
	payload, err := s.render(&ev, controlID)
	if err != nil {
		// A character the destination's set cannot hold, or a field it
		// cannot carry, keeps its code and HL7 location.
		code, loc := CodeRender, ""
		var pe *hl7v2.ParseError
		var fe *fhir.Error
		switch {
		case errors.As(err, &pe):
			code, loc = pe.Code, pe.Location
		case errors.As(err, &fe):
			// The v2 field to fix is what an analyst acts on; the FHIR
			// element is in the text.
			code, loc = CodeRender, fe.Source
		}
		return []stages.Envelope{s.outcome(in, &ev, controlID, avro.StatusRejected, 0, Result{Code: code, Location: loc}, err.Error())},
			stages.Permanent(code, loc, fmt.Errorf("destination %s: render: %w", dest.Name, err))
	}

	attempt := s.nextAttempt(ev.EventID)
	res, err := s.breaker.Execute(func() (Result, error) { return dest.Connector.Send(ctx, controlID, payload) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		s.undoAttempt(ev.EventID)
		return nil, stages.Unavailable(CodeBreakerOpen, unavailable{after: dest.BreakerOpenFor})
	}
	if res.Latency > 0 {
		s.cfg.Metrics.Attempt.WithLabelValues(dest.Name).Observe(res.Latency.Seconds())
	}
	if err != nil {
		code := CodeTransient
		var te *TransientError
		if errors.As(err, &te) {
			code = te.Code
		}
		res.Code = code
		s.cfg.Metrics.Results.WithLabelValues(dest.Name, avro.StatusRetrying).Inc()
		out := s.outcome(in, &ev, controlID, avro.StatusRetrying, attempt, res, err.Error())
		if s.breaker.State() == gobreaker.StateOpen {
			return []stages.Envelope{out}, stages.Unavailable(code, unavailable{after: dest.BreakerOpenFor})
		}
		// The receiver's words (an AR's text, a 503's body) go only with
		// the error's Detail: err's own text is careflow's.
		return []stages.Envelope{out}, stages.WithDetail(
			stages.Transient(code, fmt.Errorf("destination %s, attempt %d: %w", dest.Name, attempt, err)), res.Text)
	}
	s.doneAttempts(ev.EventID)
	if res.Rejected {
		s.cfg.Metrics.Results.WithLabelValues(dest.Name, avro.StatusRejected).Inc()
		out := s.outcome(in, &ev, controlID, avro.StatusRejected, attempt, res, answered(dest.Name, res))
		return []stages.Envelope{out}, stages.WithDetail(stages.Permanent(res.Code, res.Location,
			fmt.Errorf("%s: control id %s rejected", answered(dest.Name, res), controlID)), res.Text)
	}
	s.cfg.Metrics.Results.WithLabelValues(dest.Name, avro.StatusDelivered).Inc()
	if t := in.Headers.IngestTime(); !t.IsZero() {
		s.cfg.Metrics.EndToEnd.WithLabelValues(dest.Name).Observe(s.cfg.Now().Sub(t).Seconds())
	}
	if s.cfg.Dedup != nil {
		s.cfg.Dedup.Add(in.Partition, ev.EventID)
	}
	return []stages.Envelope{s.outcome(in, &ev, controlID, avro.StatusDelivered, attempt, res, "")}, nil
}

// answered is careflow's account of a rejection for outcomes and errors,
// "destination lab answered AE": the destination's own text, which may name
// the patient, goes only to the dead letter (stages.WithDetail).
func answered(dest string, r Result) string {
	if r.HTTPStatus != 0 {
		return fmt.Sprintf("destination %s answered HTTP %d", dest, r.HTTPStatus)
	}
	return fmt.Sprintf("destination %s answered %s", dest, r.AckCode)
}

func (s *Stage) render(ev *avro.ClinicalEvent, controlID string) ([]byte, error) {
	return s.cfg.Destination.render(ev, controlID, s.cfg.Now())
}

func (d Destination) render(ev *avro.ClinicalEvent, controlID string, now time.Time) ([]byte, error) {
	switch d.Target.Format {
	case avro.FormatJSON:
		return render.JSON(ev, controlID)
	case avro.FormatFHIR:
		return fhir.TransactionBundle(ev, fhir.BundleOptions{Systems: d.FHIRSystems, ID: controlID, PatientAuthorities: d.FHIRPatientAuthorities})
	}
	return render.HL7(ev, d.Target, controlID, now)
}

// Render is ev as d is sent it: its fields profile applied, then its
// format, with the control id deliver gives the event. The console shows
// it; ev is changed (fields outside the profile removed).
func (d Destination) Render(ev *avro.ClinicalEvent, now time.Time) ([]byte, error) {
	d.Fields.Apply(ev)
	return d.render(ev, identity.ControlID(ev.EventID, d.Name), now)
}

func (s *Stage) nextAttempt(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[id]++
	return s.attempts[id]
}

func (s *Stage) undoAttempt(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attempts[id]--; s.attempts[id] <= 0 {
		delete(s.attempts, id)
	}
}

func (s *Stage) doneAttempts(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.attempts, id)
}

// outcome builds the DeliveryOutcome record for one attempt or result.
func (s *Stage) outcome(in stages.Envelope, ev *avro.ClinicalEvent, controlID, status string, attempt int, r Result, text string) stages.Envelope {
	dest := s.cfg.Destination.Name
	now := s.cfg.Now().UTC()
	what := status
	if status == avro.StatusRetrying {
		what = "attempt-" + strconv.Itoa(attempt)
	}
	id := identity.OutcomeID(ev.EventID, topics.StageDeliver, dest, what)
	o := &avro.DeliveryOutcome{
		OutcomeID:      id,
		MessageID:      ev.EventID,
		CorrelationID:  ev.CorrelationID,
		IdempotencyKey: ev.IdempotencyKey,
		Interface:      ev.Provenance.Interface,
		Destination:    dest,
		Stage:          topics.StageDeliver,
		Status:         status,
		Attempt:        attempt,
		ControlID:      controlID,
		AckCode:        r.AckCode,
		HTTPStatus:     r.HTTPStatus,
		ErrorCode:      r.Code,
		ErrorLocation:  r.Location,
		ErrorText:      text,
		MessageType:    ev.MessageType,
		TriggerEvent:   ev.TriggerEvent,
		IngestTime:     ev.Provenance.IngestTime,
		At:             now,
		LatencyMillis:  r.Latency.Milliseconds(),
		RemoteIDs:      r.RemoteIDs,
	}
	value, err := s.cfg.Serde.Encode(o)
	if err != nil {
		// Our own schema: a failure is a bug; keep the headers at least.
		s.log.Error("encode outcome", "err", err)
	}
	h := in.Headers.Derive(topics.StageDeliver, now)
	h.Set(topics.HeaderDestination, dest)
	h.Set(topics.HeaderControlID, controlID)
	h.Set(topics.HeaderOutcomeStatus, status)
	return stages.Envelope{Topic: topics.Outcomes, Key: in.Key, Value: value, Headers: h}
}
