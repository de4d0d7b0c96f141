// Package route is the routing stage: declarative publish-subscribe from
// careflow.events to one careflow.out.<destination> topic per destination.
// Each route names a destination and a CEL condition over the event; an
// event goes to every destination whose condition holds, once per
// destination, and an event no route takes is recorded as an unrouted
// outcome rather than dropped. Conditions are type-checked against
// avro.ClinicalEvent when they are compiled (event.go), so a misspelt field
// is a configuration error, not a run-time one. docs/routing.md is the
// operator's guide.
package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// Error codes this stage records.
const (
	CodeDecode    = stages.CodeDecode            // the input is not a ClinicalEvent
	CodeEncode    = stages.CodeEncode            // an outcome could not be encoded
	CodeSchema    = stages.CodeSchemaUnavailable // the input's schema id could not be resolved
	CodeCancelled = "route.cancelled"            // the stage stopped mid-record; retried
	CodeEvalError = "route.eval_error"           // a condition failed at run time
)

// Route sends events matching When to Destination.
type Route struct {
	Name        string        // unique; recorded on metrics and error outcomes
	Destination string        // the outbound topic is topics.Outbound(Destination)
	When        string        // CEL condition returning bool, type-checked; see Compile
	SLA         time.Duration // delivery target for analytics; routing ignores it
	// Expect is how soon the orders this route sends should be accepted
	// and resulted; a breach is a late_acceptance or late_result
	// exception (timeliness.go).
	Expect Expectation
}

// Config is what New needs.
type Config struct {
	Routes  []Route
	Serde   *avro.Serde
	Now     func() time.Time      // Default: time.Now.
	Metrics prometheus.Registerer // nil: metrics are kept but not registered
	// Logger receives a WARN line when a condition fails at run time, at
	// most once a minute per route (the rest at DEBUG). Default:
	// slog.Default().
	Logger *slog.Logger
	// Patients, when set, sequences ADT updates (sequence.go): an update
	// older than the one applied for its patient is not routed, and an
	// Exception says so. Its changelog is topics.PatientState; the runner
	// must commit and abort it (stages.TxnState) and restore it on
	// assignment.
	Patients *stages.Table
	// Orders, when set, tracks the order lifecycle (orders.go): per patient
	// key, the patient's orders, changelog topics.OrderState; the runner
	// commits, aborts and restores it like Patients. With Orders the stage
	// also reads careflow.outcomes (deliver's results move orders to sent
	// and accepted), co-partitioned with careflow.events.
	Orders *stages.Table
	// Interfaces is each inbound interface's return path, by name: where
	// its acknowledgements and notifications go, how long they and its
	// results wait (replies.go, waiting.go). They need Orders.
	Interfaces map[string]Policy
}

// Stage is the routing Processor, and a stages.Ticker for its timers. It
// is safe for concurrent use.
type Stage struct {
	routes   []compiled
	serde    *avro.Serde
	now      func() time.Time
	evalLog  *evalLog
	metrics  *metrics
	patients *stages.Table
	orders   *stages.Table
	policies map[string]Policy
	maxWait  time.Duration // the longest correlation_wait (waiting.go)
	timers   timerIndex
}

type compiled struct {
	Route
	prg cel.Program
}

var _ stages.Processor = (*Stage)(nil)

// Close implements stages.Processor; route holds nothing to release.
func (s *Stage) Close(context.Context) error { return nil }

// New compiles every route's condition. The error names each route that
// does not compile, so `careflow check` can report them all at once.
func New(cfg Config) (*Stage, error) {
	if cfg.Serde == nil {
		return nil, errors.New("route: Config.Serde is required")
	}
	s := &Stage{serde: cfg.Serde, now: cfg.Now, patients: cfg.Patients, orders: cfg.Orders, policies: cfg.Interfaces}
	if s.now == nil {
		s.now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s.evalLog = newEvalLog(log, s.now)
	for _, p := range cfg.Interfaces {
		s.maxWait = max(s.maxWait, p.CorrelationWait)
	}
	var errs []error
	seen := make(map[string]bool, len(cfg.Routes))
	for i, r := range cfg.Routes {
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("route %d: name is empty", i+1))
			continue
		case seen[r.Name]:
			errs = append(errs, fmt.Errorf("route %q: name used twice", r.Name))
			continue
		case r.Destination == "":
			errs = append(errs, fmt.Errorf("route %q: destination is empty", r.Name))
			continue
		}
		seen[r.Name] = true
		prg, err := Compile(r.When)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %q: %w", r.Name, err))
			continue
		}
		s.routes = append(s.routes, compiled{Route: r, prg: prg})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// match is one destination an event goes to: the routes that chose it,
// in configuration order, and the tightest of their SLAs.
type match struct {
	destination string
	routes      []string
	sla         time.Duration
	expect      []Expectation // of the routes that chose it
}

// evalError is one route whose condition failed on an event.
type evalError struct {
	route compiled
	class string
}

// Process routes one ClinicalEvent. An ADT update older than the one
// applied for its patient (Config.Patients) is not routed: its outputs are
// an Exception and a stale outcome. Otherwise the outputs are: the state
// changes (the patient's sequence, the key's orders, waits and replies);
// the order lifecycle's transitions, exceptions and notifications; for
// each matched destination (in route order, first route wins), the event
// on its outbound topic and a routed outcome; for each condition that
// failed at run time, an outcome with code route.eval_error; when no route
// matched, one unrouted outcome; and any results that were waiting for an
// order this event placed, routed in turn. Deliver's outcomes and dead
// letters (the stage's other inputs) move orders and acknowledgements.
func (s *Stage) Process(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
	switch in.Topic {
	case topics.Outcomes:
		return s.delivered(in) // deliver's word on a message (orders.go)
	case topics.DeadLetter(topics.StageDeliver):
		return s.rejectedBy(ctx, in) // a destination's rejection, with its words
	}
	var ev avro.ClinicalEvent
	if err := s.serde.DecodeContext(ctx, in.Value, &ev); err != nil {
		return nil, stages.DecodeError(fmt.Errorf("decode ClinicalEvent from %s: %w", in.Topic, err))
	}
	now := s.now()
	base := in.Headers.Derive(topics.StageRoute, now)
	ks := s.keyStateFor(in, &ev)
	var out []stages.Envelope
	var change *stages.Change
	if held, err := s.holdBack(ks, in, &ev, base, now); err != nil {
		return nil, err
	} else if held != nil {
		out = held // re-sequenced later (resequence.go)
	} else if out, change, err = s.sequenced(ctx, in, &ev, ks, base, now); err != nil {
		return nil, err
	}
	kc, err := s.save(ks, base, now)
	if err != nil {
		return nil, err
	}
	if kc != nil {
		out = append(out, kc.Record)
	}
	// Every output is built: only now does the state change, so a retry
	// of a failed attempt never sees that attempt's state.
	s.apply(change, kc)
	return out, nil
}

// keyStateFor loads the entry of ev's key when ev may change it: an order
// message, a response or a result, a message whose sender wants an
// application acknowledgement, or an ADT message its interface
// re-sequences. Any other (most ADT messages) gets the key alone.
func (s *Stage) keyStateFor(in stages.Envelope, ev *avro.ClinicalEvent) *keyState {
	key := string(in.Key)
	if lifecycle.KindOf(ev) != lifecycle.KindNone || appAckMode(ev) != "" ||
		(ev.MessageType == "ADT" && s.policy(ev.Provenance.Interface).Resequence > 0) {
		return s.load(in.Partition, key)
	}
	return s.keyOnly(in.Partition, key)
}

// sequenced puts an event through ADT sequencing, then routes it: a stale
// update's outputs are its exception, outcome and the sender's
// notification. change is the patient's new sequencing state, for the
// caller to apply once its outputs are certain.
func (s *Stage) sequenced(ctx context.Context, in stages.Envelope, ev *avro.ClinicalEvent, ks *keyState,
	base stages.Headers, now time.Time) (out []stages.Envelope, change *stages.Change, err error) {
	stale, change, badEVN, err := s.sequence(in, ev, base.Clone(), now)
	if err != nil {
		return nil, nil, err
	}
	if change != nil {
		out = append(out, change.Record)
	}
	if stale != nil {
		outs, err := s.staleOutputs(in, ev, stale, base, now)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, outs...)
		pol := s.policy(ev.Provenance.Interface)
		if appAckMode(ev) != "" {
			outs, err = s.refuse(ks, ev, pol, CodeStaleUpdate, stale.Reason, now)
		} else {
			outs, err = s.notifyStale(ks, ev, pol, stale.Reason, now)
		}
		if err != nil {
			return nil, nil, err
		}
		return append(out, outs...), change, nil
	}
	if badEVN {
		w, err := s.warnEventTime(in, ev, base, now)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, w)
	}
	outs, err := s.dispatch(ctx, in, ev, ks, base, now, false)
	if err != nil {
		return nil, nil, err
	}
	return append(out, outs...), change, nil
}

// CodeDuplicateEvent marks the outcome of an event route did not pass on
// because the same result or order was already routed (identity's
// business keys), typically from another standard: an ORU^R01 and a FHIR
// DiagnosticReport of one result.
const CodeDuplicateEvent = "route.duplicate_event"

// duplicate is the outcome of an event already routed as first.
func (s *Stage) duplicate(in stages.Envelope, ev *avro.ClinicalEvent, base stages.Headers, first string, now time.Time) ([]stages.Envelope, error) {
	o := s.outcome(ev, now)
	o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, avro.StatusDuplicate)
	o.Status = avro.StatusDuplicate
	o.ErrorCode = CodeDuplicateEvent
	o.ErrorText = "the same " + ev.EventType + " was routed as event " + first
	env, err := s.outcomeEnvelope(in, base.Clone(), o)
	if err != nil {
		return nil, err
	}
	s.metrics.duplicates.Inc()
	return []stages.Envelope{env}, nil
}

// dispatch routes one event that sequencing let through, against its
// key's state ks (nil without an order table), which it changes in
// memory. waited says the event is a result coming back from its wait for
// an order (waiting.go): it does not wait again.
func (s *Stage) dispatch(ctx context.Context, in stages.Envelope, ev *avro.ClinicalEvent, ks *keyState,
	base stages.Headers, now time.Time, waited bool) ([]stages.Envelope, error) {
	keys := identity.BusinessKeys(ev)
	if ks == nil || !ks.loaded {
		keys = nil
	}
	if first := ks.duplicateOf(keys, ev.EventID); first != "" {
		return s.duplicate(in, ev, base, first, now)
	}
	matches, failures, err := s.evaluate(ctx, ev)
	if err != nil {
		return nil, err
	}
	pol := s.policy(ev.Provenance.Interface)
	if !waited {
		if env, ok, err := s.wait(ks, in, ev, base, now); ok || err != nil {
			return env, err
		}
	}
	tr, err := s.track(in, ev, ks, base, now, pol)
	if err != nil {
		return nil, err
	}
	if tr.hold {
		outs, err := s.refuse(ks, ev, pol, tr.holdCode, tr.holdReason, now)
		return append(tr.outs, outs...), err
	}
	if tr.value != nil {
		// The event joined its order's journey: its outbound copies and
		// outcomes carry the order's correlation id.
		in.Value = tr.value
		base.Set(topics.HeaderCorrelationID, ev.CorrelationID)
	}
	if len(matches) > 0 && len(keys) > 0 {
		// Only what reached a destination is remembered: a result held
		// or unrouted may yet come, in either form, and be routed.
		ks.e.see(keys, ev.EventID, now)
	}
	out := make([]stages.Envelope, 0, 2*len(matches)+len(failures)+2+len(tr.outs))
	out = append(out, tr.outs...)
	for _, m := range matches {
		h := base.Clone()
		h.Set(topics.HeaderDestination, m.destination)
		out = append(out, stages.Envelope{Topic: topics.Outbound(m.destination), Key: in.Key, Value: in.Value, Headers: h})
		o := s.outcome(ev, now)
		o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, m.destination)
		o.Status = avro.StatusRouted
		o.Destination = m.destination
		o.ControlID = identity.ControlID(ev.EventID, m.destination)
		// Which routes, and the SLA they set, are this stage's facts:
		// analytics reads them here rather than evaluating routes again.
		o.Routes, o.SLAMillis = m.routes, m.sla.Milliseconds()
		env, err := s.outcomeEnvelope(in, h, o)
		if err != nil {
			return nil, err
		}
		out = append(out, env)
		s.metrics.routed.WithLabelValues(m.destination, m.routes[0]).Inc()
	}
	for _, f := range failures {
		h := base.Clone()
		h.Set(topics.HeaderDestination, f.route.Destination)
		o := s.outcome(ev, now)
		o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, "error", f.route.Name)
		// No status says "errored" yet; unrouted with an error code is
		// the closest truth: this route did not take the event.
		o.Status = avro.StatusUnrouted
		o.Destination = f.route.Destination
		o.ErrorCode = CodeEvalError
		o.ErrorText = fmt.Sprintf("route %q condition: %s", f.route.Name, f.class)
		env, err := s.outcomeEnvelope(in, h, o)
		if err != nil {
			return nil, err
		}
		out = append(out, env)
	}
	if len(matches) == 0 {
		o := s.outcome(ev, now)
		o.OutcomeID = identity.OutcomeID(ev.EventID, topics.StageRoute, avro.StatusUnrouted)
		o.Status = avro.StatusUnrouted
		env, err := s.outcomeEnvelope(in, base.Clone(), o)
		if err != nil {
			return nil, err
		}
		out = append(out, env)
		s.metrics.unrouted.Inc()
	}
	acks, err := s.await(ks, in, ev, matches, pol, now)
	if err != nil {
		return nil, err
	}
	out = append(out, acks...)
	if len(tr.placed) > 0 || tr.learnt {
		// A new order, or a filler number learnt, may be what a waiting
		// result names.
		s.expect(ks, ev, tr.placed, matches, now)
		released, err := s.releaseFor(ctx, ks, now)
		if err != nil {
			return nil, err
		}
		out = append(out, released...)
	}
	return out, nil
}

// apply makes the decided state changes in the open transaction.
func (s *Stage) apply(changes ...*stages.Change) {
	for _, c := range changes {
		if c == nil {
			continue
		}
		switch c.Record.Topic {
		case topics.PatientState:
			s.patients.Apply(*c)
		case topics.OrderState:
			s.orders.Apply(*c)
		}
	}
}

// evaluate runs every condition against ev and returns the destinations
// matched, deduplicated, and the conditions that failed. A failed
// condition does not match; only a cancelled context fails the record
// (transiently), because retrying then gives the same answer as now
// would have.
func (s *Stage) evaluate(ctx context.Context, ev *avro.ClinicalEvent) ([]match, []evalError, error) {
	act := eventActivation{ev}
	var matches []match
	var failures []evalError
	for i := range s.routes {
		r := &s.routes[i]
		// CEL looks at ctx only inside comprehensions; check it here too
		// so a cancelled stage never reads as "no route matched".
		if err := ctx.Err(); err != nil {
			return nil, nil, stages.Transient(CodeCancelled, fmt.Errorf("route %q: %w", r.Name, err))
		}
		val, _, err := r.prg.ContextEval(ctx, act)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, stages.Transient(CodeCancelled, fmt.Errorf("route %q: %w", r.Name, ctx.Err()))
			}
			class := errorClass(err)
			s.metrics.evalErrors.WithLabelValues(r.Name).Inc()
			s.evalLog.failed(ctx, r, ev.EventID, class)
			failures = append(failures, evalError{route: *r, class: class})
			continue
		}
		if val != types.True {
			continue
		}
		if i := indexOf(matches, r.Destination); i >= 0 {
			m := &matches[i]
			m.routes = append(m.routes, r.Name)
			if r.SLA > 0 && (m.sla == 0 || r.SLA < m.sla) {
				m.sla = r.SLA
			}
			m.expect = append(m.expect, r.Expect)
			continue
		}
		matches = append(matches, match{destination: r.Destination, routes: []string{r.Name}, sla: r.SLA, expect: []Expectation{r.Expect}})
	}
	return matches, failures, nil
}

func indexOf(ms []match, dest string) int {
	for i, m := range ms {
		if m.destination == dest {
			return i
		}
	}
	return -1
}

// outcome fills the fields every outcome of ev shares.
func (s *Stage) outcome(ev *avro.ClinicalEvent, now time.Time) *avro.DeliveryOutcome {
	return &avro.DeliveryOutcome{
		MessageID:      ev.EventID,
		CorrelationID:  ev.CorrelationID,
		IdempotencyKey: ev.IdempotencyKey,
		Interface:      ev.Provenance.Interface,
		Stage:          topics.StageRoute,
		MessageType:    ev.MessageType,
		TriggerEvent:   ev.TriggerEvent,
		IngestTime:     ev.Provenance.IngestTime,
		At:             now.UTC(),
	}
}

func (s *Stage) outcomeEnvelope(in stages.Envelope, h stages.Headers, o *avro.DeliveryOutcome) (stages.Envelope, error) {
	b, err := s.serde.Encode(o)
	if err != nil {
		// The serde or registry failed, not the record: retry.
		return stages.Envelope{}, stages.Transient(CodeEncode, fmt.Errorf("encode %s outcome for destination %q: %w", o.Status, o.Destination, err))
	}
	return stages.Envelope{Topic: topics.Outcomes, Key: in.Key, Value: b, Headers: h}, nil
}
