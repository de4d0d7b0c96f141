// Package engine assembles a running careflow from a validated
// configuration: the Kafka backbone (embedded or external), the schema
// registry, the admin endpoint, and the stages, each a Runner of its own
// consumer group. `careflow run` starts them all in one process; `careflow
// stage NAME` starts one, so a platform team scales a stage by starting
// more copies.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
	"golang.org/x/sync/errgroup"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/topics"
	"github.com/careflow-health/careflow/topics/kafka"
)

// Options say what to run and where. Config is required.
type Options struct {
	Config *config.Config
	// DataDir holds the embedded broker's log and the embedded schema
	// registry. Required when no brokers are given.
	DataDir string
	// Brokers, when set, override the configuration's kafka.brokers.
	Brokers []string
	// SchemaRegistry is an external registry URL; empty serves the
	// embedded one (persisted in DataDir) on the admin port.
	SchemaRegistry string
	// Stages to run; empty runs every stage. Names are topics.Stage*.
	Stages []string
	// Destinations limits the deliver stage to these; empty: all.
	Destinations []string
	// InstanceID names this copy of the stages (static group member and
	// transactional id). Default: the host name.
	InstanceID string
	// EmbeddedPort overrides the embedded broker's port (-1: random).
	EmbeddedPort int
	Logger       *slog.Logger
	// KafkaLogger, when set, receives the Kafka client's own log
	// (connections, group rebalances, transactions), each stage's client
	// tagged with its stage. Nil: the client logs nothing.
	KafkaLogger *slog.Logger
}

// Engine is a running careflow.
type Engine struct {
	opts   Options
	cfg    *config.Config
	log    *slog.Logger
	broker *kafka.Embedded
	client *kgo.Client
	kopts  []kgo.Opt
	serde  *avro.Serde
	store  *registry.Store
	audit  *audit.Recorder
	// stopAudit ends the recorder's Run and waits for it: after the
	// stages, so that refusals folded while ingest drains are written.
	stopAudit func()
	metrics   *prometheus.Registry
	stageM    *stages.Metrics
	admin     *http.Server
	adminLn   net.Listener
	httpSrv   *http.Server
	httpLn    net.Listener
	group     *errgroup.Group
	runners   []*stages.Runner
	cancel    context.CancelFunc
	ready     chan struct{}
	closeOne  sync.Once
}

// Start brings the engine up and returns once every listener is open and
// the stages are running. Stop it by cancelling ctx, then call Wait.
func Start(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Config == nil {
		return nil, errors.New("engine: a configuration is required")
	}
	e := &Engine{opts: opts, cfg: opts.Config, log: opts.Logger, ready: make(chan struct{})}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.opts.InstanceID == "" {
		h, _ := os.Hostname()
		e.opts.InstanceID = h
	}
	e.metrics = prometheus.NewRegistry()
	e.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e.stageM = stages.NewMetrics(e.metrics)
	if err := e.startBackbone(ctx); err != nil {
		e.closeBackbone()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	g, gctx := errgroup.WithContext(runCtx)
	e.group = g
	e.startAudit(ctx)
	e.recordConfiguration()
	if err := e.startAdmin(gctx); err != nil {
		cancel()
		_ = g.Wait()
		e.closeBackbone()
		return nil, err
	}
	if err := e.startStages(gctx); err != nil {
		cancel()
		_ = g.Wait()
		e.closeBackbone()
		return nil, err
	}
	close(e.ready)
	e.log.Info("careflow running", "stages", e.stageNames(), "brokers", e.brokers(), "admin", e.AdminAddr())
	return e, nil
}

func (e *Engine) brokers() []string {
	if len(e.opts.Brokers) > 0 {
		return e.opts.Brokers
	}
	if len(e.cfg.Kafka.Brokers) > 0 {
		return e.cfg.Kafka.Brokers
	}
	if e.broker != nil {
		return e.broker.Addrs()
	}
	return nil
}

// Embedded reports whether the engine runs its own broker.
func (e *Engine) Embedded() bool { return e.broker != nil }

func (e *Engine) startBackbone(ctx context.Context) error {
	k := e.cfg.Kafka
	kafkaDir, regDir := e.dataDirs()
	maxBytes := kafka.MaxMessageBytes
	for _, in := range e.cfg.Inbound {
		// The raw record and its dead letter carry the message plus an
		// envelope; leave room for both.
		maxBytes = max(maxBytes, 2*in.MaxMessageSize+(1<<20))
	}
	if len(e.opts.Brokers) == 0 && k.Embedded() {
		if kafkaDir == "" {
			return errors.New("engine: --data is required with the embedded broker (no kafka.brokers and no --brokers)")
		}
		host, port := "127.0.0.1", e.opts.EmbeddedPort
		if k.Listen != "" {
			h, p, err := net.SplitHostPort(k.Listen)
			if err != nil {
				return fmt.Errorf("engine: kafka.listen %q: %w", k.Listen, err)
			}
			if h != "" {
				host = h
			}
			if port == 0 {
				port, _ = strconv.Atoi(p)
			}
		}
		b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{
			DataDir: kafkaDir, Host: host, Port: port,
			SyncWrites: k.SyncWrites, Partitions: k.Partitions, MaxMessageBytes: maxBytes,
		})
		if err != nil {
			return err
		}
		e.broker = b
	}
	base := []kgo.Opt{kgo.SeedBrokers(e.brokers()...), kgo.ProducerBatchMaxBytes(int32(maxBytes))}
	if e.opts.KafkaLogger != nil {
		base = append(base, kgo.WithLogger(kslog.New(e.opts.KafkaLogger)))
	}
	kopts, err := e.kafkaOpts(ctx, base...)
	if err != nil {
		return err
	}
	e.kopts = kopts
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, e.kopts...),
		kgo.ProducerLinger(0),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)...)
	if err != nil {
		return fmt.Errorf("engine: kafka client for %v: %w", e.brokers(), err)
	}
	e.client = cl
	replication := int16(max(k.Replication, 1))
	if e.broker != nil {
		replication = 1
	}
	var dests []string
	for _, d := range e.cfg.Destinations {
		dests = append(dests, d.Name)
	}
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(tctx, cl, int32(max(k.Partitions, 1)), replication, maxBytes, kafka.Pipeline(dests)...); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	// The dead-letter and audit topics hold no state; the rest must agree.
	keyed := []string{topics.Raw, topics.Valid, topics.Events, topics.Outcomes, topics.PatientState, topics.OrderState, topics.Orders, topics.Exceptions,
		// deliver's dead letters tell route of rejections, beside the events.
		topics.DeadLetter(topics.StageDeliver), topics.OrderClaims, topics.OrderIndex}
	for _, d := range dests {
		keyed = append(keyed, topics.Outbound(d))
	}
	if err := kafka.CheckCoPartitioned(tctx, cl, keyed...); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	var reg avro.Registry
	if e.opts.SchemaRegistry != "" {
		r, err := registry.NewRemote(e.opts.SchemaRegistry)
		if err != nil {
			return fmt.Errorf("engine: schema registry %s: %w", e.opts.SchemaRegistry, err)
		}
		reg = r
	} else {
		if regDir == "" {
			return errors.New("engine: --data is required for the embedded schema registry (or give --schema-registry URL)")
		}
		s, err := registry.Open(regDir, e.registryOptions()...)
		if err != nil {
			return fmt.Errorf("engine: embedded schema registry: %w", err)
		}
		e.store = s
		reg = s
	}
	serde, err := avro.NewSerde(ctx, reg)
	if err != nil {
		return fmt.Errorf("engine: register schemas: %w", err)
	}
	e.serde = serde
	e.audit = audit.New(audit.Config{Client: e.client, Serde: serde, Observer: e.opts.InstanceID, Logger: e.log, Metrics: e.metrics})
	return nil
}

// dataDirs are where the embedded broker and registry keep their state:
// under --data when given, else kafka.data_dir and a "registry" folder
// beside it.
func (e *Engine) dataDirs() (kafkaDir, registryDir string) {
	if e.opts.DataDir != "" {
		return filepath.Join(e.opts.DataDir, "kafka"), filepath.Join(e.opts.DataDir, "registry")
	}
	if d := e.cfg.Kafka.DataDir; d != "" {
		return d, filepath.Join(filepath.Dir(d), "registry")
	}
	return "", ""
}

// startAudit runs the audit recorder on a context of its own, which
// closeBackbone ends once the stages have stopped.
func (e *Engine) startAudit(ctx context.Context) {
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.audit.Run(actx)
	}()
	e.stopAudit = func() { cancel(); <-done }
}

func (e *Engine) closeBackbone() {
	if e.stopAudit != nil {
		e.stopAudit()
		e.stopAudit = nil
	}
	if e.client != nil {
		// Audit records are handed to the client without waiting: send
		// what it holds before closing.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := e.client.Flush(fctx); err != nil {
			e.log.Warn("flush audit records before stopping", "err", err)
		}
		cancel()
		e.client.Close()
	}
	if e.broker != nil {
		e.broker.Close()
	}
}

// Wait blocks until the engine has stopped (its context ended) and every
// stage has drained, then closes the backbone. Shutdown is ordered: stop
// accepting (listeners), finish in-flight work (transactions), flush, close.
func (e *Engine) Wait() error {
	err := e.group.Wait()
	e.closeOne.Do(func() {
		e.closeBackbone()
		e.log.Info("careflow stopped")
	})
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Stop cancels the engine and waits for it.
func (e *Engine) Stop() error {
	e.cancel()
	return e.Wait()
}

// AdminAddr is the admin endpoint's address.
func (e *Engine) AdminAddr() string {
	if e.adminLn == nil {
		return ""
	}
	return e.adminLn.Addr().String()
}

// HTTPAddr is the HTTP ingest endpoint's address.
func (e *Engine) HTTPAddr() string {
	if e.httpLn == nil {
		return ""
	}
	return e.httpLn.Addr().String()
}

// Brokers are the Kafka seed addresses in use.
func (e *Engine) Brokers() []string { return e.brokers() }

// Serde is the engine's record serde (tools and tests decode with it).
func (e *Engine) Serde() *avro.Serde { return e.serde }

// Broker is the embedded broker, nil with an external Kafka.
func (e *Engine) Broker() *kafka.Embedded { return e.broker }

func (e *Engine) runs(stage string) bool {
	return len(e.opts.Stages) == 0 || slices.Contains(e.opts.Stages, stage)
}

func (e *Engine) stageNames() []string {
	var out []string
	for _, s := range append(topics.Stages, topics.StageSink) {
		if e.runs(s) && (s != topics.StageSink || e.cfg.Analytics.Enabled()) {
			out = append(out, s)
		}
	}
	return out
}
