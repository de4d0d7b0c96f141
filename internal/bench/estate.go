// Package bench measures careflow against the physical limits of the
// machine it runs on: an MLLP echo server, the broker, and the engine
// itself with stand-in destinations. `make bench` runs it through
// bench/suite; each function here is one measurement, run once.
package bench

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/stages/route"
)

// PatientPrefix starts the patient identifier (PID-3.1) of every message
// the benchmarks send, followed by the message's sequence number, so a
// stand-in destination can tell which message it received.
const PatientPrefix = "BQ"

// Estate is a running engine with the demo's routes and stand-in
// destinations that acknowledge at once and note what arrives.
type Estate struct {
	EHR    string // MLLP address of the ehr inbound interface
	eng    *engine.Engine
	cancel context.CancelFunc
	stops  []func()

	mu       sync.Mutex
	counts   map[string]int    // deliveries per destination
	arrivals map[int]time.Time // seq -> first arrival at lab
	last     time.Time         // the latest delivery
	downAddr map[string]string // destinations not started yet
}

// StartDown starts the stand-in of the destination left down.
func (e *Estate) StartDown(dest string) error {
	addr, ok := e.downAddr[dest]
	if !ok {
		return fmt.Errorf("destination %s is not down", dest)
	}
	_, err := e.startMLLP(dest, addr)
	return err
}

// EstateOptions choose what the estate runs.
type EstateOptions struct {
	// Config is the engine's configuration file (the demo's); its
	// listeners and destinations are moved to free local ports.
	Config string
	// DataDir holds the embedded broker's log.
	DataDir string
	// Stages to run; empty: all.
	Stages []string
	// Logger gets the engine's log. Default: discarded.
	Logger *slog.Logger
	// Down names an MLLP destination whose stand-in is not started: its
	// address is reserved and StartDown starts it later. Its breaker opens
	// for BreakerOpenFor (default 500ms) so that it is retried soon after.
	Down           string
	BreakerOpenFor time.Duration
	// Ack, when set, is every inbound interface's ack mode
	// (config.AckValidated, config.AckCommit); "": the configuration's.
	Ack string
}

// StartEstate starts the stand-ins, then the engine.
func StartEstate(ctx context.Context, opts EstateOptions) (*Estate, error) {
	cfg, err := config.Load(opts.Config, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		return nil, err
	}
	e := &Estate{counts: map[string]int{}, arrivals: map[int]time.Time{}, downAddr: map[string]string{}}
	fail := func(err error) (*Estate, error) { e.Close(); return nil, err }
	for i := range cfg.Destinations {
		d := &cfg.Destinations[i]
		var addr string
		if d.Transport == avro.TransportHTTP || d.Transport == avro.TransportFHIR {
			// A FHIR server's 200 without a transaction-response is still
			// a delivery (with no remote ids): the stand-in counts it.
			addr, err = e.startHTTP(d.Name)
			d.URL = "http://" + addr + "/events"
		} else if d.Name == opts.Down {
			addr, err = freeport.Addr()
			d.Address, e.downAddr[d.Name] = addr, addr
			d.Breaker.OpenFor = cmp.Or(opts.BreakerOpenFor, 500*time.Millisecond)
		} else {
			addr, err = e.startMLLP(d.Name, "127.0.0.1:0")
			d.Address = addr
		}
		if err != nil {
			return fail(err)
		}
	}
	for i := range cfg.Inbound {
		if cfg.Inbound[i].Listen, err = freeport.Addr(); err != nil {
			return fail(err)
		}
		if cfg.Inbound[i].Name == "ehr" {
			e.EHR = cfg.Inbound[i].Listen
		}
		if opts.Ack != "" {
			cfg.Inbound[i].Ack = opts.Ack
		}
	}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.HTTP.Listen = ""
	ectx, cancel := context.WithCancel(ctx)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	eng, err := engine.Start(ectx, engine.Options{Config: cfg, DataDir: opts.DataDir, EmbeddedPort: -1,
		Stages: opts.Stages, InstanceID: "bench", Logger: log})
	if err != nil {
		cancel()
		return fail(err)
	}
	e.eng, e.cancel = eng, cancel
	return e, nil
}

// Close stops the engine, then the stand-ins.
func (e *Estate) Close() error {
	var err error
	if e.eng != nil {
		e.cancel()
		err = e.eng.Wait()
		e.eng = nil
	}
	for _, stop := range e.stops {
		stop()
	}
	e.stops = nil
	return err
}

// Delivered is the number of messages the stand-ins have acknowledged, by
// destination.
func (e *Estate) Delivered() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.counts))
	for k, v := range e.counts {
		out[k] = v
	}
	return out
}

// LastDelivery is when a stand-in last received a message.
func (e *Estate) LastDelivery() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last
}

// Arrivals returns when each message (by sequence number) first reached
// the lab, and forgets them.
func (e *Estate) Arrivals() map[int]time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.arrivals
	e.arrivals = map[int]time.Time{}
	return out
}

func (e *Estate) note(dest string, payload []byte) {
	now := time.Now()
	seq := -1
	if i := bytes.Index(payload, []byte("|"+PatientPrefix)); i >= 0 {
		j := i + 1 + len(PatientPrefix)
		k := j
		for k < len(payload) && payload[k] >= '0' && payload[k] <= '9' {
			k++
		}
		seq, _ = strconv.Atoi(string(payload[j:k]))
	}
	e.mu.Lock()
	e.counts[dest]++
	e.last = now
	if dest == "lab" && seq >= 0 {
		if _, dup := e.arrivals[seq]; !dup {
			e.arrivals[seq] = now
		}
	}
	e.mu.Unlock()
}

func (e *Estate) startMLLP(dest, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		m, err := hl7v2.Parse(append([]byte(nil), req.Payload...))
		if err != nil {
			return nil
		}
		e.note(dest, req.Payload)
		return hl7v2.BuildACK(m.Header(), m.Delimiters(), hl7v2.AckAA, hl7v2.ACKOptions{ControlID: "R1", Now: time.Now()})
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	e.stops = append(e.stops, func() { cancel(); <-done })
	return ln.Addr().String(), nil
}

func (e *Estate) startHTTP(dest string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	return ln.Addr().String(), e.serveHTTP(dest, ln)
}

// startHTTPOn starts the HTTP stand-in for dest on addr.
func (e *Estate) startHTTPOn(dest, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return e.serveHTTP(dest, ln)
}

func (e *Estate) serveHTTP(dest string, ln net.Listener) error {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.note(dest, body)
	}), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	e.stops = append(e.stops, func() { _ = srv.Close(); <-done })
	return nil
}
