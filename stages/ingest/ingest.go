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
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"careflow/avro"
	"careflow/connectors/mllp"
)

// Defaults for Config fields left zero.
const (
	DefaultProduceTimeout  = 10 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
)

// Interface is one inbound MLLP interface: a name (the source interface of
// every record it writes) and where to listen. Zero fields take the mllp
// package's defaults.
type Interface struct {
	Name           string
	Listen         string // host:port
	MaxMessageSize int    // Default: 4 MiB (also the HTTP body limit for this name)
	ReadTimeout    time.Duration
	IdleTimeout    time.Duration
	MaxConnections int
	TLSConfig      *tls.Config
}

// Config configures the ingest stage.
type Config struct {
	Interfaces []Interface
	// HTTPInterfaces are further interface names accepted on
	// POST /hl7/{interface} only; every name in Interfaces is accepted there
	// too.
	HTTPInterfaces []string
	// Client produces the records. It must use acks=all (kgo's default,
	// with idempotency) and should set ProducerLinger(0): every record is
	// awaited alone, so lingering only adds latency to each ACK.
	Client *kgo.Client
	Serde  *avro.Serde
	Logger *slog.Logger
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
}

// Stage is the running ingest stage.
type Stage struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	limits  map[string]int // interface name → max message size (HTTP and MLLP)

	mu        sync.Mutex
	listening bool
	servers   []*listener
}

type listener struct {
	iface Interface
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
	s := &Stage{cfg: cfg, log: cfg.Logger.With("stage", "ingest"), limits: map[string]int{}}
	for i, in := range cfg.Interfaces {
		if in.Name == "" {
			return nil, fmt.Errorf("ingest: interface %d has no name", i)
		}
		if in.Listen == "" {
			return nil, fmt.Errorf("ingest: interface %s has no listen address", in.Name)
		}
		if _, dup := s.limits[in.Name]; dup {
			return nil, fmt.Errorf("ingest: interface %s configured twice", in.Name)
		}
		s.limits[in.Name] = orDefault(in.MaxMessageSize, mllp.DefaultMaxMessageSize)
	}
	for _, name := range cfg.HTTPInterfaces {
		if name == "" {
			return nil, errors.New("ingest: HTTP interface with no name")
		}
		if _, ok := s.limits[name]; !ok {
			s.limits[name] = mllp.DefaultMaxMessageSize
		}
	}
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
func (s *Stage) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening {
		return nil
	}
	var opened []*listener
	for _, in := range s.cfg.Interfaces {
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

func (s *Stage) newServer(in Interface) *mllp.Server {
	conns := s.metrics.connections.WithLabelValues(in.Name)
	return &mllp.Server{
		Handler:        s.mllpHandler(in.Name),
		MaxMessageSize: in.MaxMessageSize,
		ReadTimeout:    in.ReadTimeout,
		IdleTimeout:    in.IdleTimeout,
		MaxConnections: in.MaxConnections,
		TLSConfig:      in.TLSConfig,
		Logger:         s.log.With("interface", in.Name),
		ConnState: func(_ net.Addr, st mllp.ConnState) {
			switch st {
			case mllp.StateOpen:
				conns.Inc()
			case mllp.StateClosed:
				conns.Dec()
			case mllp.StateRejected:
				s.metrics.refused.WithLabelValues(in.Name).Inc()
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
	return g.Wait()
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
