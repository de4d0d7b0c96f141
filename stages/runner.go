package stages

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
)

// RunnerConfig says what a Runner consumes, what it runs and how it talks to
// Kafka. Zero values take the defaults noted on each field.
type RunnerConfig struct {
	Stage  string   // stage name, e.g. topics.StageValidate
	Inputs []string // topics consumed
	// CoPartitioned says the inputs are keyed alike (the patient key) and
	// the processor keeps state per partition number: partition p of every
	// input must go to the same copy. The group then uses Kafka's range
	// balancer, which assigns them so; the default balancer would not.
	CoPartitioned bool
	Processor     Processor
	Serde         *avro.Serde // encodes dead letters

	// Group is the consumer group. Default: "careflow-" + Stage.
	Group string
	// Kafka holds the connection options (seed brokers, TLS, SASL).
	Kafka []kgo.Opt
	// InstanceID names this copy of the stage; it becomes the static group
	// member id and the stable part of the transactional id, so it must be
	// unique per running copy. Default: Group + "-0".
	InstanceID string
	// FreshTransactionalID appends a random suffix to the transactional id
	// on every session. Use it with the embedded broker, which dies with
	// the process: see docs/exactly-once.md for why a stable id loses
	// committed records there.
	FreshTransactionalID bool
	// MaxRecords bounds the records per transaction. Default: 500.
	MaxRecords int
	// TransactionTimeout is the broker's limit on an open transaction.
	// Default: 90s.
	TransactionTimeout time.Duration
	// RetryInitial and RetryMax bound the backoff between tries of a
	// record whose processing failed transiently. Defaults: 200ms, 10s.
	RetryInitial, RetryMax time.Duration
	// RetryMultiplier grows the backoff after each try. Default: 2.
	RetryMultiplier float64
	// TransactionBudget is how long one transaction keeps taking new
	// records; the rest of the poll waits for the next transaction, so a
	// slow destination never holds one open near TransactionTimeout (or
	// a rebalance past its timeout). Default: TransactionTimeout / 4.
	TransactionBudget time.Duration
	// HoldLimit is how long one record may be retried inside a transaction
	// before the runner rewinds to it and pauses instead. Default: 15s.
	HoldLimit time.Duration
	// PauseFor is how long input is paused after an Unavailable error that
	// gives no time of its own. Default: 5s.
	PauseFor time.Duration
	// State, when the processor keeps state that must follow the fate of
	// each transaction (dedup sets), is told of commits and aborts.
	State TxnState
	// OnAssigned runs when partitions are assigned, before any of their
	// records are processed (dedup state is rebuilt here).
	OnAssigned func(ctx context.Context, assigned map[string][]int32)
	// OnRevoked runs when partitions are revoked or lost.
	OnRevoked func(ctx context.Context, revoked map[string][]int32)

	// TickEvery is how often a Processor that is also a Ticker is asked
	// for the work its timers make due, when no record arrives sooner.
	// Default: 1s.
	TickEvery time.Duration

	Logger  *slog.Logger
	Metrics *Metrics
	Now     func() time.Time
}

// Ticker is a Processor with timers: work that falls due with time rather
// than with a record (a result that waited long enough for its order, an
// acknowledgement whose destinations never answered). The runner calls
// Tick, at most every TickEvery, between polls, while the partitions it
// owns cannot be revoked, and writes what it returns in a transaction of
// its own or beside the records of the poll, so a timer's output is as
// exactly-once as a record's. Tick must decide only on state the partitions
// this copy owns hold, and return the changelog records of every state it
// changes (stages.Table) among its outputs; a Tick that returns nothing
// changed nothing.
type Ticker interface {
	Tick(ctx context.Context, now time.Time) ([]Envelope, error)
}

// TxnState is processor state that must commit or roll back with the
// transaction that changed it.
type TxnState interface {
	Commit()
	Abort()
}

// RetryAfter lets an Unavailable error say when the destination may be tried
// again (a breaker's open interval), and a Transient one how long the
// destination asked to be left alone (HTTP Retry-After).
type RetryAfter interface{ RetryAfter() time.Duration }

// Runner drives one stage: a consume → process → produce loop in Kafka
// transactions, with offsets committed inside the transaction, so that a
// crash at any instant neither loses nor duplicates a record on the output
// topics.
type Runner struct {
	cfg    RunnerConfig
	log    *slog.Logger
	chain  Processor // cfg.Processor inside the middleware
	ticker Ticker    // cfg.Processor when it has timers
	ready  atomic.Bool
	ticked time.Time // last Tick; the session goroutine's only
}

// Ready reports whether the runner has a working transactional session (for
// /readyz): false while it starts and while a broken session is rebuilt.
func (r *Runner) Ready() bool { return r.ready.Load() }

// Name is the runner's stage and group, for reports.
func (r *Runner) Name() string { return r.cfg.Group }

// NewRunner checks cfg and applies defaults.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.Stage == "" || len(cfg.Inputs) == 0 || cfg.Processor == nil || cfg.Serde == nil {
		return nil, errors.New("stage runner: stage, inputs, processor and serde are required")
	}
	if cfg.Group == "" {
		cfg.Group = "careflow-" + cfg.Stage
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = cfg.Group + "-0"
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 500
	}
	if cfg.TransactionTimeout <= 0 {
		cfg.TransactionTimeout = 90 * time.Second
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.RetryMultiplier <= 1 {
		cfg.RetryMultiplier = 2
	}
	if cfg.TransactionBudget <= 0 {
		cfg.TransactionBudget = cfg.TransactionTimeout / 4
	}
	if cfg.HoldLimit <= 0 {
		cfg.HoldLimit = 15 * time.Second
	}
	if cfg.PauseFor <= 0 {
		cfg.PauseFor = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TickEvery <= 0 {
		cfg.TickEvery = time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Runner{cfg: cfg, log: log.With("stage", cfg.Stage, "group", cfg.Group)}
	r.chain = Chain(cfg.Processor,
		Measure(cfg.Stage, cfg.Metrics),
		DeadLetter(cfg.Stage, cfg.Serde, cfg.Now, cfg.Metrics, r.log),
		Retry(cfg.Stage, RetryPolicy{Initial: cfg.RetryInitial, Max: cfg.RetryMax, Multiplier: cfg.RetryMultiplier, HoldLimit: cfg.HoldLimit}, cfg.Metrics, r.log),
		Recover(cfg.Stage, r.log),
	)
	r.ticker, _ = cfg.Processor.(Ticker)
	return r, nil
}

// Run consumes until ctx ends, then finishes the transaction in flight,
// leaves the group and closes the processor. A session that breaks (fenced
// after a broker restart, lost coordinator) is rebuilt; Run returns only
// when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.cfg.Processor.Close(cctx); err != nil {
			r.log.Warn("close the stage's processor", "err", err)
		}
	}()
	backoff := r.cfg.RetryInitial
	for {
		err := r.session(ctx)
		r.ready.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("stage session ended; rebuilding", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, r.cfg.RetryMax)
	}
}

func (r *Runner) transactionalID() string {
	// One id per (group, copy): deliver runs a group per destination in
	// one process, and two runners sharing an id would fence each other.
	id := r.cfg.Group + "-" + r.cfg.InstanceID
	if r.cfg.FreshTransactionalID {
		var b [6]byte
		_, _ = rand.Read(b[:])
		id += "-" + hex.EncodeToString(b[:])
	}
	return id
}

// Fetch bounds of a stage's consumer: a transaction's worth of typical
// records (MaxRecords of a few KiB each), not a backlog.
const (
	fetchMaxBytes          = 2 << 20
	fetchMaxPartitionBytes = 512 << 10
)

// session runs one GroupTransactSession until ctx ends or it breaks.
func (r *Runner) session(ctx context.Context) error {
	// franz-go's session aborts the next transaction after any revoke,
	// even one that happened between transactions (we block rebalances
	// while one is open). revoked tracks that, so the runner can clear the
	// session's state before doing work that would be thrown away.
	var revoked atomic.Bool
	opts := append([]kgo.Opt{}, r.cfg.Kafka...)
	if r.cfg.CoPartitioned {
		opts = append(opts, kgo.Balancers(kgo.RangeBalancer()))
	}
	opts = append(opts,
		kgo.TransactionalID(r.transactionalID()),
		kgo.TransactionTimeout(r.cfg.TransactionTimeout),
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(r.cfg.Inputs...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerLinger(0),
		// franz-go buffers a fetch ahead of the one being processed, by
		// default up to 1 MiB per partition and 50 MiB in all. While a
		// stage runs behind (a burst, a backlog) every stage would hold
		// that much: bound it, so the engine's memory does not grow with
		// the backlog. A record larger than the bound is still fetched.
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
		kgo.InstanceID(r.cfg.InstanceID),
		// A rebalance waits for the transaction in flight to end, instead
		// of aborting it: deliver's sends cannot be taken back, so an
		// abort would resend the whole batch. Transactions are bounded
		// (MaxRecords, HoldLimit) well inside the rebalance timeout.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			// Joined the group (even with nothing to own): the broker
			// answers and the session works.
			defer r.ready.Store(true)
			r.log.Info("partitions assigned", "partitions", m)
			if r.cfg.OnAssigned != nil {
				r.cfg.OnAssigned(ctx, m)
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m) > 0 {
				revoked.Store(true)
			}
			if r.cfg.OnRevoked != nil {
				r.cfg.OnRevoked(ctx, m)
			}
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			revoked.Store(true)
			if r.cfg.OnRevoked != nil {
				r.cfg.OnRevoked(ctx, m)
			}
		}),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("stage %s: create transactional session: %w", r.cfg.Stage, err)
	}
	defer sess.CloseAllowingRebalance()
	// Register the transactional producer before anything else. A copy
	// killed mid-commit leaves its transaction open, and until a producer
	// with the same transactional id registers (fencing it, which aborts
	// that transaction) the group's offsets stay unstable: this copy's
	// offset fetch would retry UNSTABLE_OFFSET_COMMIT until the broker's
	// transaction timeout, and franz-go registers only at the first
	// produce, which never comes. Java's clients call initTransactions()
	// first for the same reason (KAFKA-10235).
	if _, _, err := sess.Client().ProducerID(ctx); err != nil {
		return fmt.Errorf("stage %s: register transactional producer: %w", r.cfg.Stage, err)
	}

	for {
		fetches := r.poll(ctx, sess)
		if ctx.Err() != nil {
			return nil
		}
		var fatal error
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return // shutting down, or a Ticker's poll timed out
			}
			r.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			if errors.Is(err, kgo.ErrClientClosed) {
				fatal = err
			}
		})
		if fatal != nil {
			return fatal
		}
		if revoked.Swap(false) {
			// Ending an empty transaction resets the session (and rewinds
			// fetching to the committed offsets), so the records just
			// polled are fetched again and processed in a transaction that
			// can commit, instead of being sent and then rolled back.
			if _, err := sess.End(ctx, kgo.TryAbort); err != nil && ctx.Err() == nil {
				return fmt.Errorf("stage %s: reset session after rebalance: %w", r.cfg.Stage, err)
			}
			sess.AllowRebalance()
			continue
		}
		if fetches.NumRecords() == 0 {
			err := r.tickAlone(ctx, sess)
			sess.AllowRebalance()
			if err != nil {
				return err
			}
			continue
		}
		pause, err := r.transaction(ctx, sess, fetches)
		sess.AllowRebalance()
		if err != nil {
			return err
		}
		if pause > 0 {
			r.pause(ctx, sess, pause)
		}
	}
}

// poll waits for records; for a Ticker, no longer than until its next
// tick.
func (r *Runner) poll(ctx context.Context, sess *kgo.GroupTransactSession) kgo.Fetches {
	if r.ticker == nil {
		return sess.PollRecords(ctx, r.cfg.MaxRecords)
	}
	wait := max(time.Until(r.ticked.Add(r.cfg.TickEvery)), time.Millisecond)
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return sess.PollRecords(pctx, r.cfg.MaxRecords)
}

// tickDue reports whether the Ticker's next tick is due.
func (r *Runner) tickDue() bool {
	return r.ticker != nil && time.Since(r.ticked) >= r.cfg.TickEvery
}

// tick asks the Ticker for its due work. A failed Tick is logged and
// tried again at the next tick: its state changes are dropped with the
// transaction's.
func (r *Runner) tick(ctx context.Context) ([]Envelope, error) {
	r.ticked = time.Now()
	outs, err := r.ticker.Tick(ctx, r.cfg.Now())
	if err != nil {
		r.log.Warn("timer work failed; trying again at the next tick", "err", err)
		return nil, err
	}
	return outs, nil
}

// tickAlone runs a due tick in a transaction of its own, when no record
// came to carry it. It returns an error only when the session is broken.
func (r *Runner) tickAlone(ctx context.Context, sess *kgo.GroupTransactSession) error {
	if !r.tickDue() {
		return nil
	}
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TransactionTimeout)
	defer cancel()
	outs, err := r.tick(work)
	if err != nil || len(outs) == 0 {
		if r.cfg.State != nil {
			r.cfg.State.Abort()
		}
		return nil
	}
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("stage %s: begin transaction: %w", r.cfg.Stage, err)
	}
	t := &txn{r: r, sess: sess, ctx: work}
	t.produce(outs)
	_, err = r.end(ctx, work, sess, t, 0)
	return err
}

// pause stops fetching the inputs for d, then resumes. Records stay in
// Kafka: nothing is skipped, and per-partition order holds.
func (r *Runner) pause(ctx context.Context, sess *kgo.GroupTransactSession, d time.Duration) {
	cl := sess.Client()
	cl.PauseFetchTopics(r.cfg.Inputs...)
	r.cfg.Metrics.Paused.WithLabelValues(r.cfg.Stage, r.cfg.Group).Set(1)
	r.log.Info("input paused", "for", d)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	cl.ResumeFetchTopics(r.cfg.Inputs...)
	r.cfg.Metrics.Paused.WithLabelValues(r.cfg.Stage, r.cfg.Group).Set(0)
}

// transaction processes one poll's records in one transaction. It returns
// how long to pause the input afterwards (0 for no pause), and an error only
// when the session is broken.
func (r *Runner) transaction(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches) (time.Duration, error) {
	if err := sess.Begin(); err != nil {
		return 0, fmt.Errorf("stage %s: begin transaction: %w", r.cfg.Stage, err)
	}
	// The transaction's own work runs on a context that shutdown does not
	// cancel: a record being processed when careflow is asked to stop is
	// finished and committed, not rolled back and (for deliver) sent again.
	// ctx still decides when to stop taking new records.
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.TransactionTimeout)
	defer cancel()
	t := &txn{r: r, sess: sess, ctx: work}
	var pause time.Duration
	stop := false
	deadline := time.Now().Add(r.cfg.TransactionBudget)
	rewind := map[string]map[int32]kgo.EpochOffset{}

	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, rec := range p.Records {
			if !stop && (ctx.Err() != nil || time.Now().After(deadline)) {
				// Shutting down, or this transaction has run long enough
				// (a slow destination): commit what is done, leave the rest
				// for the next transaction. Never near the broker's
				// transaction timeout.
				stop = true
			}
			if pause > 0 || stop {
				// Every later record waits: rewind each partition to its
				// first unprocessed record.
				setRewind(rewind, rec)
				return
			}
			d := r.handle(ctx, work, t, rec)
			if d > 0 {
				pause = d
				setRewind(rewind, rec)
				return
			}
		}
	})
	if len(rewind) > 0 {
		// SetOffsets moves both the fetch position and the offset the
		// transaction commits for these partitions, so the commit below
		// covers exactly the records processed.
		sess.Client().SetOffsets(rewind)
	}
	if r.tickDue() && t.produceErr() == nil {
		outs, err := r.tick(work)
		if err != nil {
			// A failed Tick may have changed state halfway: the whole
			// transaction goes, and its records are processed again.
			t.fail(err)
		}
		t.produce(outs)
	}
	return r.end(ctx, work, sess, t, pause)
}

// end commits the transaction t (aborts it when a produce failed), tells
// the state, and returns how long to pause the input.
func (r *Runner) end(ctx, work context.Context, sess *kgo.GroupTransactSession, t *txn, pause time.Duration) (time.Duration, error) {
	commit := kgo.TryCommit
	if t.produceErr() != nil {
		r.log.Warn("produce failed; aborting transaction", "err", t.produceErr())
		commit = kgo.TryAbort
	}
	committed, err := sess.End(work, commit)
	if committed {
		t.commitMetrics()
		if r.cfg.State != nil {
			r.cfg.State.Commit()
		}
	} else {
		r.cfg.Metrics.Aborts.WithLabelValues(r.cfg.Stage).Inc()
		if r.cfg.State != nil {
			r.cfg.State.Abort()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil
		}
		if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidProducerIDMapping) {
			return 0, fmt.Errorf("stage %s: session fenced: %w", r.cfg.Stage, err)
		}
		r.log.Warn("end transaction", "err", err)
		return 0, fmt.Errorf("stage %s: end transaction: %w", r.cfg.Stage, err)
	}
	if commit == kgo.TryAbort && pause == 0 {
		pause = r.cfg.RetryInitial
	}
	return pause, nil
}

func setRewind(m map[string]map[int32]kgo.EpochOffset, rec *kgo.Record) {
	if m[rec.Topic] == nil {
		m[rec.Topic] = map[int32]kgo.EpochOffset{}
	}
	if _, ok := m[rec.Topic][rec.Partition]; !ok {
		m[rec.Topic][rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset}
	}
}

// handle processes one record through the middleware chain (measure,
// dead-letter, retry, recover) and produces what it gives. It returns how
// long to pause the input when the record must be tried again later: its
// destination is unavailable, or it was still failing at the hold limit.
// ctx ending stops retrying (shutdown); work is what the processor runs
// under.
func (r *Runner) handle(ctx, work context.Context, t *txn, rec *kgo.Record) time.Duration {
	outs, err := r.chain.Process(withStopping(work, ctx.Done()), toEnvelope(rec))
	t.produce(outs)
	if err == nil {
		return 0 // done, or dead-lettered by the chain
	}
	switch KindOf(err) {
	case KindUnavailable:
		return retryAfter(err, r.cfg.PauseFor)
	case KindTransient:
		return retryAfter(err, r.cfg.RetryInitial)
	}
	// A permanent error the chain did not dead-letter cannot happen (its
	// DeadLetter consumes them); skipping the record would lose it.
	r.log.Error("permanent error reached the runner; pausing", "err", err)
	return r.cfg.PauseFor
}
