// Package audit records who did what to careflow on careflow.audit, one
// avro.AuditEvent a record (shaped after FHIR R4 AuditEvent), for the
// analytics sink to copy into ClickHouse: writers refused at ingest,
// configurations loaded, schema registry writes, dead-letter replays
// (stages/replay writes those itself, in the transaction of the replay,
// with this package's type and entity names), and later review decisions.
//
// Recording never holds up the work it records: a record is handed to the
// Kafka client without waiting, and when the client's buffer is full it is
// dropped and counted (careflow_audit_dropped_total) rather than blocking a
// sender's ACK. A refusal repeated by one agent is folded: at most one
// record per agent, entity and reason a minute, carrying the count.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// Event types this package's callers record.
const (
	TypeWriterRefused        = "writer_refused"
	TypeConfigurationLoaded  = "configuration_loaded"
	TypeRegistryWrite        = "registry_write"
	TypeRegistryWriteRefused = "registry_write_refused"
	// TypeDeadLetterReplayed is a person putting a dead letter back on
	// its original topic (careflow dlq replay).
	TypeDeadLetterReplayed = "dead_letter_replayed"
)

// Agent types: how the agent was identified.
const (
	AgentToken       = "token"
	AgentJWT         = "jwt"
	AgentCertificate = "certificate"
	AgentAddress     = "address"
	AgentCareflow    = "careflow"
	// AgentUser is a person at a careflow tool, named by their
	// operating-system user.
	AgentUser = "user"
)

// Entity types: what was acted on.
const (
	EntityInterface     = "interface"
	EntitySchemaSubject = "schema_subject"
	EntityConfiguration = "configuration"
	EntityDeadLetter    = "dead_letter" // EntityWhat: its id, stage:partition:offset
)

// FoldWindow is how long repeats of one refusal are folded into one
// record.
const FoldWindow = time.Minute

// maxFolds bounds the refusals being folded at once, so that a flood from
// many addresses cannot grow the recorder without bound; past it, expired
// folds are written out at once and, if still full, a refusal is written
// unfolded.
const maxFolds = 10_000

// Config configures a Recorder.
type Config struct {
	// Client writes the records; nil makes a Recorder that only counts
	// (tools and tests that need none).
	Client *kgo.Client
	Serde  *avro.Serde
	// Observer names this careflow instance (AuditEvent.source.observer).
	Observer string
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	Now      func() time.Time // Default: time.Now.
}

// Recorder writes audit records. It is safe for concurrent use; Run
// flushes folded refusals and must run while the Recorder is in use.
type Recorder struct {
	cfg     Config
	log     *slog.Logger
	dropped prometheus.Counter
	written *prometheus.CounterVec

	mu    sync.Mutex
	folds map[foldKey]*fold
}

type foldKey struct{ agentType, who, network, entity, reason string }

// fold is one refusal being folded: the record last written for it and
// how many repeats have been seen since.
type fold struct {
	ev      avro.AuditEvent
	at      time.Time
	repeats int
}

// New returns a Recorder.
func New(cfg Config) *Recorder {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Recorder{
		cfg: cfg, log: log.With("component", "audit"), folds: map[foldKey]*fold{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "careflow_audit_dropped_total",
			Help: "Audit records not written because the Kafka client's buffer was full or encoding failed.",
		}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_audit_records_total",
			Help: "Audit records handed to Kafka, by type.",
		}, []string{"type"}),
	}
	r.dropped, r.written = stages.MustRegister(cfg.Metrics, r.dropped), stages.MustRegister(cfg.Metrics, r.written)
	return r
}

// Record writes ev to careflow.audit, filling its id, time, observer and
// count when they are unset.
func (r *Recorder) Record(ev avro.AuditEvent) {
	if r == nil {
		return
	}
	if ev.AuditID == "" {
		ev.AuditID = identity.NewMessageID() // as random as a message's
	}
	if ev.Recorded.IsZero() {
		ev.Recorded = r.cfg.Now().UTC()
	}
	if ev.SourceObserver == "" {
		ev.SourceObserver = r.cfg.Observer
	}
	ev.Count = max(ev.Count, 1)
	r.written.WithLabelValues(ev.Type).Inc()
	if r.cfg.Client == nil || r.cfg.Serde == nil {
		return
	}
	value, err := r.cfg.Serde.Encode(&ev)
	if err != nil {
		r.dropped.Inc()
		r.log.Error("encode audit record", "type", ev.Type, "err", err)
		return
	}
	rec := &kgo.Record{Topic: topics.Audit, Key: []byte(ev.EntityWhat), Value: value}
	r.cfg.Client.TryProduce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err != nil {
			r.dropped.Inc()
			r.log.Warn("audit record not written", "type", ev.Type, "err", err)
		}
	})
}

// Refusal is one refused attempt to write or change something.
type Refusal struct {
	Type         string // TypeWriterRefused, TypeRegistryWriteRefused
	AgentType    string
	AgentWho     string // token name, JWT subject, certificate subject; "" when unknown
	AgentNetwork string // the remote address (IP)
	EntityType   string
	EntityWhat   string // interface name, schema subject
	EntityDetail string // transport, control id
	Reason       string // careflow's words; never patient data
}

// Refused records a refusal. The first of a kind (same agent, entity and
// reason) is written at once; repeats within FoldWindow are counted, and
// written as one record when the window has passed (by Run, or by the
// next repeat), so a flood of refusals cannot flood the audit trail. It
// reports whether this refusal was written at once, so that the caller
// can log it as sparingly (a nil Recorder reports true).
func (r *Recorder) Refused(f Refusal) (written bool) {
	if r == nil {
		return true
	}
	now := r.cfg.Now()
	key := foldKey{f.AgentType, f.AgentWho, f.AgentNetwork, f.EntityWhat, f.Reason}
	ev := avro.AuditEvent{
		Type: f.Type, Action: avro.AuditCreate, Outcome: avro.AuditSeriousFailure, OutcomeDesc: f.Reason,
		AgentType: f.AgentType, AgentWho: f.AgentWho, AgentNetwork: f.AgentNetwork,
		EntityType: f.EntityType, EntityWhat: f.EntityWhat, EntityDetail: f.EntityDetail,
	}
	if r.foldCount() >= maxFolds {
		r.flush(false)
	}
	r.mu.Lock()
	fd, seen := r.folds[key]
	switch {
	case !seen && len(r.folds) >= maxFolds:
		// Still full: written as it is, not folded.
	case !seen:
		r.folds[key] = &fold{ev: ev, at: now}
	case now.Sub(fd.at) < FoldWindow:
		fd.repeats++
		r.mu.Unlock()
		return false
	default:
		// The window has passed: this one and the repeats before it.
		ev.Count = 1 + fd.repeats
		fd.ev, fd.at, fd.repeats = ev, now, 0
	}
	r.mu.Unlock()
	r.Record(ev)
	return true
}

func (r *Recorder) foldCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.folds)
}

// Run writes the repeats folded in each window once it has passed, until
// ctx ends, then writes those still pending.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(FoldWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flush(true)
			return nil
		case <-t.C:
			r.flush(false)
		}
	}
}

// flush writes the folded repeats whose window has passed (all of them when
// final) and forgets refusals not seen for a window.
func (r *Recorder) flush(final bool) {
	now := r.cfg.Now()
	var out []avro.AuditEvent
	r.mu.Lock()
	for k, fd := range r.folds {
		if !final && now.Sub(fd.at) < FoldWindow {
			continue
		}
		if fd.repeats > 0 {
			ev := fd.ev
			ev.AuditID, ev.Recorded, ev.Count = "", time.Time{}, fd.repeats
			out = append(out, ev)
		}
		delete(r.folds, k)
	}
	r.mu.Unlock()
	for _, ev := range out {
		r.Record(ev)
	}
}
