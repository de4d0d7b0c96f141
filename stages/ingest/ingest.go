// Package ingest is careflow's first stage: it receives HL7 v2 messages over
// MLLP (one listener per inbound interface) and HTTP (POST /hl7/{interface}),
// writes each to careflow.raw, and acknowledges only after Kafka has the
// record (acks=all). Input it cannot parse is rejected to the sender and
// kept on careflow.dlq.ingest.
//
// Unlike later stages, ingest is not a Processor run inside a transaction:
// its input is a socket, not a topic, and its "commit" is the ACK it sends.
package ingest

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/careflow-health/careflow/stages/identity"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/stages/conformance"
)

// Defaults for Config fields left zero.
const (
	DefaultProduceTimeout  = 10 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// Interface is one inbound interface: a name (the source interface of every
// record it writes), where it listens for MLLP, and who may write to it.
// Zero fields take the mllp package's defaults.
type Interface struct {
	Name string
	// Listen is the MLLP listener's host:port; "" for an interface that is
	// written over HTTP only.
	Listen         string
	MaxMessageSize int // Default: 4 MiB (also the HTTP body limit)
	ReadTimeout    time.Duration
	IdleTimeout    time.Duration
	// FirstByteTimeout and HandshakeTimeout bound a connection that sends
	// nothing and a TLS handshake.
	FirstByteTimeout      time.Duration
	HandshakeTimeout      time.Duration
	MaxConnections        int
	MaxConnectionsPerPeer int
	TLSConfig             *tls.Config
	// HTTP makes an MLLP interface writable over POST /hl7/{name} as
	// well; an interface without Listen always is.
	HTTP    bool
	Writers Writers
	// Charset is the character set assumed when MSH-18 is empty.
	// Default: UTF-8.
	Charset string
	// Identity is the identifier policy the patient key (the Kafka key)
	// is taken by; the zero Policy takes the first PID-3 identifier with
	// an assigning authority.
	Identity identity.Policy
	// FHIR makes this a FHIR R4 REST interface at /fhir/{Name}/ on the
	// HTTP listener, taking FHIRResources (default: every type careflow
	// normalises).
	FHIR          bool
	FHIRResources []string
	// Rules, when set, make the ACK wait for the interface's conformance
	// rules (`ack: validated`): AA (CA) when the message passes, AE (CE)
	// with an ERR segment when it fails. The message is stored either way;
	// validate dead-letters the failure. Nil: the ACK says only that the
	// message is stored (`ack: commit`).
	Rules *conformance.Checker
}

// httpWritable reports whether the interface accepts POST /hl7/{name}.
func (in *Interface) httpWritable() bool { return !in.FHIR && (in.HTTP || in.Listen == "") }

// Config configures the ingest stage.
type Config struct {
	Interfaces []Interface
	// Client produces the records. It must use acks=all (kgo's default,
	// with idempotency) and should set ProducerLinger(0): every record is
	// awaited alone, so lingering only adds latency to each ACK.
	Client *kgo.Client
	Serde  *avro.Serde
	Logger *slog.Logger
	// Audit records refused writers; nil: they are only logged and counted.
	Audit *audit.Recorder
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Metrics receives the stage's collectors; nil means unregistered.
	Metrics prometheus.Registerer
	// ProduceTimeout bounds the Kafka write behind one ACK; on expiry the
	// sender gets AR and resends. Keep it below senders' ACK timeouts.
	// Default: 10s.
	ProduceTimeout time.Duration
	// ShutdownTimeout bounds draining in-flight messages when Run's
	// context ends. Default: 30s.
	ShutdownTimeout time.Duration
	// FHIRSystems maps FHIR identifier systems to assigning authorities,
	// for the patient key of a FHIR write.
	FHIRSystems *fhir.Systems
	// Kafka is how Load reads careflow.fhir (the client options of a
	// consumer of the same cluster); nil leaves the FHIR store empty.
	Kafka []kgo.Opt
	// Version is careflow's, for the FHIR CapabilityStatement.
	Version string
	// FHIRTransactionalID prefixes the transactional ids of the FHIR
	// writes' producers (one per copy of ingest: its instance id in it);
	// FreshTransactionalID adds a random suffix. Default: careflow-ingest-fhir.
	FHIRTransactionalID  string
	FreshTransactionalID bool
}

// Stage is the running ingest stage.
type Stage struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	ifaces  map[string]*Interface // by name, with defaults applied

	fhir    *resourceStore // the FHIR interfaces' resources
	fhirTx  *txWriter      // their writes, as Kafka transactions
	started time.Time

	mu        sync.Mutex
	listening bool
	servers   []*listener
}

type listener struct {
	iface *Interface
	srv   *mllp.Server
	ln    net.Listener
}

// New validates cfg and returns a Stage; it opens no sockets (see Listen).
func New(cfg Config) (*Stage, error) {
	if cfg.Client == nil {
		return nil, errors.New("ingest: Config.Client is nil")
	}
	if cfg.Serde == nil {
		return nil, errors.New("ingest: Config.Serde is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProduceTimeout <= 0 {
		cfg.ProduceTimeout = DefaultProduceTimeout
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.Audit == nil {
		// Still folds repeated refusals, which keeps their log lines
		// down to one a minute.
		cfg.Audit = audit.New(audit.Config{Logger: cfg.Logger})
	}
	s := &Stage{cfg: cfg, log: cfg.Logger.With("stage", "ingest"), ifaces: map[string]*Interface{}, fhir: newResourceStore(), started: time.Now()}
	for i, in := range cfg.Interfaces {
		if in.Name == "" {
			return nil, fmt.Errorf("ingest: interface %d has no name", i)
		}
		if _, dup := s.ifaces[in.Name]; dup {
			return nil, fmt.Errorf("ingest: interface %s configured twice", in.Name)
		}
		in.MaxMessageSize = orDefault(in.MaxMessageSize, mllp.DefaultMaxMessageSize)
		if in.FHIR && len(in.FHIRResources) == 0 {
			in.FHIRResources = fhir.ResourceTypes
		}
		if in.Writers.JWT != nil && in.Writers.Scope == "" {
			return nil, fmt.Errorf("ingest: interface %s: writers accept JWTs but name no scope they must grant", in.Name)
		}
		s.ifaces[in.Name] = &in
	}
	for _, in := range s.ifaces {
		if in.FHIR && cfg.Kafka == nil {
			return nil, fmt.Errorf("ingest: interface %s: %w", in.Name, errNoFHIRWriter)
		}
	}
	s.fhirTx = newTxWriter(cfg.Kafka, cmp.Or(cfg.FHIRTransactionalID, "careflow-ingest-fhir"), cfg.FreshTransactionalID)
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s.metrics = m
	return s, nil
}

// Listen opens every interface's MLLP listener, so that address errors show
// before anything runs and tests can learn ephemeral ports (see Addr). Run
// calls it if it has not been called. Calling it again does nothing.
// LoadFHIR reads careflow.fhir, every resource the FHIR interfaces hold,
// so that updates, conditional operations and If-Match after a restart
// see what was written before it. Call it before serving HTTP.
func (s *Stage) LoadFHIR(ctx context.Context) error {
	if s.cfg.Kafka == nil {
		return nil
	}
	return s.fhir.load(ctx, s.cfg.Kafka)
}

func (s *Stage) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening {
		return nil
	}
	var opened []*listener
	for _, c := range s.cfg.Interfaces {
		in := s.ifaces[c.Name]
		if in.Listen == "" {
			continue
		}
		ln, err := net.Listen("tcp", in.Listen)
		if err != nil {
			for _, l := range opened {
				_ = l.ln.Close()
			}
			return fmt.Errorf("ingest: listen for interface %s on %s: %w", in.Name, in.Listen, err)
		}
		opened = append(opened, &listener{iface: in, ln: ln, srv: s.newServer(in)})
	}
	s.servers = opened
	s.listening = true
	return nil
}

// Addr returns the MLLP address interface name listens on, or nil when it
// has none or Listen has not run.
func (s *Stage) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.servers {
		if l.iface.Name == name {
			return l.ln.Addr()
		}
	}
	return nil
}

func (s *Stage) newServer(in *Interface) *mllp.Server {
	conns := s.metrics.connections.WithLabelValues(in.Name)
	return &mllp.Server{
		Handler:               s.mllpHandler(in),
		MaxMessageSize:        in.MaxMessageSize,
		ReadTimeout:           in.ReadTimeout,
		IdleTimeout:           in.IdleTimeout,
		FirstByteTimeout:      in.FirstByteTimeout,
		HandshakeTimeout:      in.HandshakeTimeout,
		MaxConnections:        in.MaxConnections,
		MaxConnectionsPerPeer: in.MaxConnectionsPerPeer,
		TLSConfig:             in.TLSConfig,
		Logger:                s.log.With("interface", in.Name),
		ConnState: func(_ net.Addr, st mllp.ConnState) {
			switch st {
			case mllp.StateOpen:
				conns.Inc()
			case mllp.StateClosed:
				conns.Dec()
			default:
				// Refused, evicted, a failed handshake, silence: each
				// counted by kind (the server logs them, once a minute a peer).
				s.metrics.refused.WithLabelValues(in.Name, st.String()).Inc()
			}
		},
	}
}

// Run serves every MLLP interface until ctx ends, then stops accepting,
// lets in-flight messages finish (their ACKs written) for up to
// ShutdownTimeout, and returns. It returns early with an error if a
// listener fails.
func (s *Stage) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	servers := s.servers
	s.mu.Unlock()

	// Servers run on a context that outlives ctx so that Shutdown, not
	// cancellation, ends them: in-flight handlers keep their context and
	// finish their Kafka write.
	serveCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	g, gctx := errgroup.WithContext(serveCtx)
	for _, l := range servers {
		g.Go(func() error {
			if err := l.srv.Serve(gctx, l.ln); err != nil {
				return fmt.Errorf("ingest: interface %s: %w", l.iface.Name, err)
			}
			return nil
		})
	}
	s.log.Info("ingest listening", "interfaces", len(servers))
	select {
	case <-ctx.Done():
	case <-gctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range servers {
		wg.Go(func() {
			if err := l.srv.Shutdown(sctx); err != nil {
				s.log.Warn("ingest shutdown did not drain", "interface", l.iface.Name, "err", err)
			}
		})
	}
	wg.Wait()
	hardStop()
	err := g.Wait()
	// The HTTP listener is the engine's and drains beside this; a FHIR
	// write that got its transaction in time is committed, one after is
	// answered 503.
	s.fhirTx.close()
	return err
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
