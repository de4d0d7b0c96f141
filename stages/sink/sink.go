// Package sink is the stage that feeds ClickHouse: a consumer group over the
// raw, events, outcomes and dead-letter topics that turns each record into
// analytics rows and inserts them in batches bounded by size and time.
//
// It is not a transactional runner: it produces nothing downstream but dead
// letters, so it commits its offsets itself, and only after ClickHouse has
// the whole batch. A crash between insert and commit re-inserts the batch,
// which the model absorbs (every row has a deterministic identity; see
// package analytics). While ClickHouse is down the sink waits and retries
// with backoff, holding its batch; the rest of the pipeline does not wait
// for it.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// Config configures the sink. DSN, Kafka and Serde are required.
type Config struct {
	// DSN is the ClickHouse server and database:
	// clickhouse://127.0.0.1:9000/careflow.
	DSN string
	// Kafka are the client options (seed brokers, limits) shared with the
	// engine; the sink adds its group and consumer settings.
	Kafka []kgo.Opt
	Serde *avro.Serde
	// Group is the consumer group. Default: "careflow-sink".
	Group string
	// BatchRows bounds the records of one insert. Default: 1000.
	BatchRows int
	// BatchInterval bounds how long a record waits for its batch to
	// fill. Default: 1s.
	BatchInterval time.Duration
	// RetryInitial and RetryMax bound the backoff while ClickHouse or
	// Kafka refuses. Default: 200ms and 10s.
	RetryInitial, RetryMax time.Duration
	// MetricsEvery is how often the backlog gauge is refreshed.
	// Default: 15s.
	MetricsEvery time.Duration
	// Targets are the destinations' SLAs, for the breach counters
	// (careflow_sla_breaches_total); the SLA a routed outcome records
	// wins when the sink has seen it.
	Targets analytics.Targets
	Metrics *Metrics // nil: not exported
	// StageMetrics counts the sink's dead letters with every stage's
	// (careflow_stage_dead_lettered_total{stage="sink"}); nil: not counted.
	StageMetrics *stages.Metrics
	Logger       *slog.Logger
}

// Inputs are the topics the sink reads: every stage's dead letters but its
// own (the sink reading what it dead-letters could loop).
func Inputs() []string {
	in := []string{topics.Raw, topics.Valid, topics.Events, topics.Outcomes, topics.Audit, topics.Exceptions, topics.Orders, topics.Review}
	for _, s := range topics.Stages {
		in = append(in, topics.DeadLetter(s))
	}
	return in
}

// Sink is the ClickHouse sink stage.
type Sink struct {
	cfg Config
	log *slog.Logger
	// recent holds the route SLAs of events seen lately, by message id
	// and destination, so the breach counter can use them. Bounded: it
	// is emptied when full (a miss falls back to the destination's SLA).
	recent map[string][]analytics.MessageSLA
}

// maxRecent bounds Sink.recent.
const maxRecent = 100_000

// New checks cfg and fills its defaults.
func New(cfg Config) (*Sink, error) {
	if cfg.DSN == "" {
		return nil, errors.New("sink: a ClickHouse DSN is required")
	}
	if cfg.Serde == nil {
		return nil, errors.New("sink: a serde is required")
	}
	if cfg.Group == "" {
		cfg.Group = "careflow-" + topics.StageSink
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 1000
	}
	if cfg.BatchInterval <= 0 {
		cfg.BatchInterval = time.Second
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.MetricsEvery <= 0 {
		cfg.MetricsEvery = 15 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Sink{cfg: cfg, log: log.With("stage", topics.StageSink, "group", cfg.Group), recent: map[string][]analytics.MessageSLA{}}, nil
}

// Run consumes until ctx ends. It returns nil then; it does not return
// because ClickHouse or Kafka is down, it waits for them.
func (s *Sink) Run(ctx context.Context) error {
	store, err := s.open(ctx)
	if err != nil {
		return nil // ctx ended while ClickHouse was down
	}
	defer store.Close()
	opts := append(append([]kgo.Opt{}, s.cfg.Kafka...),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(Inputs()...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("sink: kafka client: %w", err)
	}
	defer cl.Close()

	mctx, stopMetrics := context.WithCancel(ctx)
	metricsDone := make(chan struct{})
	go func() {
		defer close(metricsDone)
		s.watch(mctx, store)
	}()
	defer func() { stopMetrics(); <-metricsDone }()

	s.log.Info("sink running", "database", store.Database(), "batch_rows", s.cfg.BatchRows, "batch_interval", s.cfg.BatchInterval)
	var (
		pending []*kgo.Record
		first   time.Time
		batch   analytics.Batch
	)
	for ctx.Err() == nil {
		wait := s.cfg.BatchInterval
		if len(pending) > 0 {
			wait = max(time.Until(first.Add(s.cfg.BatchInterval)), time.Millisecond)
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := cl.PollRecords(pctx, s.cfg.BatchRows-len(pending))
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.log.Warn("fetch", "topic", t, "partition", p, "err", err)
			}
		})
		recs := fetches.Records()
		if len(pending) == 0 && len(recs) > 0 {
			first = time.Now()
		}
		pending = append(pending, recs...)
		if len(pending) == 0 || (len(pending) < s.cfg.BatchRows && time.Since(first) < s.cfg.BatchInterval) {
			continue
		}
		if err := s.flush(ctx, cl, store, pending, &batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err // the sink's own dead letter would not encode: a bug
		}
		pending = pending[:0]
	}
	return nil
}

// open connects to ClickHouse and migrates, retrying until it can or ctx
// ends.
func (s *Sink) open(ctx context.Context) (*analytics.Store, error) {
	var store *analytics.Store
	err := s.retry(ctx, "connect to clickhouse", func() error {
		var err error
		store, err = analytics.Open(ctx, s.cfg.DSN)
		if err != nil {
			s.cfg.Metrics.InsertErrors.Inc()
		}
		return err
	})
	return store, err
}

// flush writes recs: dead letters for the ones that do not decode, rows for
// the others, then commits their offsets. It retries until done or ctx
// ends.
func (s *Sink) flush(ctx context.Context, cl *kgo.Client, store *analytics.Store, recs []*kgo.Record, b *analytics.Batch) error {
	b.Reset()
	var dead []*kgo.Record
	for _, r := range recs {
		err := s.appendRows(r, b)
		var de *decodeError
		if errors.As(err, &de) && de.retry {
			var last error
			if rerr := s.retry(ctx, "read schema from the registry", func() error {
				last = s.appendRows(r, b)
				if errors.As(last, &de) && de.retry {
					return last
				}
				return nil // read, or proven unreadable: dead-lettered below
			}); rerr != nil {
				return rerr
			}
			err = last
		}
		if err != nil {
			dl, derr := s.deadLetter(r, err)
			if derr != nil {
				return derr
			}
			dead = append(dead, dl)
		}
	}
	if len(dead) > 0 {
		err := s.retry(ctx, "write sink dead letters", func() error { return cl.ProduceSync(ctx, dead...).FirstErr() })
		if err != nil {
			return err
		}
	}
	if b.Len() > 0 {
		start := time.Now()
		err := s.retry(ctx, "insert into clickhouse", func() error {
			err := store.Insert(ctx, b)
			if err != nil {
				s.cfg.Metrics.InsertErrors.Inc()
			}
			return err
		})
		if err != nil {
			return err
		}
		s.cfg.Metrics.InsertSeconds.Observe(time.Since(start).Seconds())
		s.cfg.Metrics.BatchRows.Observe(float64(b.Len()))
		s.cfg.Metrics.Rows.Add(float64(b.Len()))
		s.countSLA(b)
	}
	// A failed commit is not retried: the records will be read and
	// inserted again, which the model collapses.
	if err := cl.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
		s.log.Warn("commit offsets; the batch will be re-read and re-inserted harmlessly", "records", len(recs), "err", err)
	}
	return nil
}

// deadLetter builds the sink's dead letter for r, which failed with err.
func (s *Sink) deadLetter(r *kgo.Record, err error) (*kgo.Record, error) {
	code := CodeMalformed
	var de *decodeError
	if errors.As(err, &de) {
		code = de.code
	}
	var hs []avro.Header
	var id, corr, iface string
	for _, h := range r.Headers {
		hs = append(hs, avro.Header{Key: h.Key, Value: h.Value})
		switch h.Key {
		case topics.HeaderMessageID:
			id = string(h.Value)
		case topics.HeaderCorrelationID:
			corr = string(h.Value)
		case topics.HeaderInterface:
			iface = string(h.Value)
		}
	}
	s.log.Warn("record dead-lettered", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "code", code, "message_id", id)
	if s.cfg.StageMetrics != nil {
		s.cfg.StageMetrics.DeadLettered.WithLabelValues(topics.StageSink, iface).Inc()
	}
	v, encErr := s.cfg.Serde.Encode(&avro.DeadLetter{
		Stage: topics.StageSink, ErrorCode: code, ErrorText: err.Error(),
		MessageID: id, CorrelationID: corr, Interface: iface,
		OriginalTopic: r.Topic, OriginalPartition: r.Partition, OriginalOffset: r.Offset,
		OriginalKey: r.Key, OriginalValue: r.Value, OriginalHeaders: hs, At: time.Now().UTC(),
	})
	if encErr != nil {
		return nil, fmt.Errorf("sink: encode dead letter for %s/%d/%d: %w", r.Topic, r.Partition, r.Offset, encErr)
	}
	return &kgo.Record{
		Topic: topics.DeadLetter(topics.StageSink), Key: r.Key, Value: v,
		Headers: append(append([]kgo.RecordHeader{}, r.Headers...),
			kgo.RecordHeader{Key: topics.HeaderDLQStage, Value: []byte(topics.StageSink)},
			kgo.RecordHeader{Key: topics.HeaderDLQCode, Value: []byte(code)},
			kgo.RecordHeader{Key: topics.HeaderDLQText, Value: []byte(err.Error())},
			kgo.RecordHeader{Key: topics.HeaderDLQTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: topics.HeaderDLQPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: topics.HeaderDLQOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		),
	}, nil
}

// retry runs fn until it succeeds, backing off between failures, or ctx
// ends (then it returns ctx's error).
func (s *Sink) retry(ctx context.Context, what string, fn func() error) error {
	wait := s.cfg.RetryInitial
	for n := 1; ; n++ {
		err := fn()
		if err == nil {
			if n > 1 {
				s.log.Info(what+" succeeded after retries", "attempts", n)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn(what+"; retrying", "attempt", n, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, s.cfg.RetryMax)
	}
}

// countSLA counts the batch's deliveries and SLA breaches. It runs after
// the insert, so a batch retried is counted once; a batch re-read after a
// restart is counted again (Prometheus counters are per process; ClickHouse
// holds the exact figures).
func (s *Sink) countSLA(b *analytics.Batch) {
	for _, t := range b.SLAs {
		if len(s.recent) >= maxRecent {
			clear(s.recent)
		}
		s.recent[t.MessageID] = append(s.recent[t.MessageID], t)
	}
	for _, a := range b.Attempts {
		if a.Status != avro.StatusDelivered || a.IngestTime.IsZero() {
			continue
		}
		target := s.cfg.Targets[a.Destination]
		for _, t := range s.recent[a.MessageID] {
			if t.Destination == a.Destination && t.SLA > 0 {
				target = t.SLA
			}
		}
		s.cfg.Metrics.SLADeliveries.WithLabelValues(a.Destination).Inc()
		if target > 0 && a.At.Sub(a.IngestTime) > target {
			s.cfg.Metrics.SLABreaches.WithLabelValues(a.Destination).Inc()
		}
	}
}
