// Package demo simulates the third parties of a small hospital for
// `careflow demo`: an EHR sending ADT and orders, a laboratory that answers
// orders with results, the EHR's results inbox, a patient portal, a
// home-monitoring app writing FHIR with tokens from a demo identity
// provider, and a FHIR server careflow delivers to. It talks to careflow
// only over the wire (MLLP, HTTP and FHIR), on the fixed ports of
// examples/demo/careflow.yaml, and prints a live summary of each flow.
//
// Every patient is synthetic.
package demo

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/careflow-health/careflow/connectors/mllp"
)

// Config says where the simulated systems connect and listen. Zero values
// mean the defaults, which match examples/demo/careflow.yaml.
type Config struct {
	// EHR and LabResults are careflow's inbound MLLP addresses the EHR and
	// the lab send to. Default: 127.0.0.1:2575 and 127.0.0.1:2576.
	EHR, LabResults string
	// Lab, EHRResults and Portal are where the lab (MLLP), the EHR's
	// results inbox (MLLP) and the portal (HTTP, POST /events) listen.
	// Default: 127.0.0.1:6661, 127.0.0.1:6662 and 127.0.0.1:6663.
	Lab, EHRResults, Portal string
	// HTTP is careflow's HTTP ingest address, where the patient portal
	// posts its updates (POST /hl7/portal-updates). Default:
	// 127.0.0.1:8080.
	HTTP string
	// Notifications is where the EHR hears careflow's application
	// acknowledgements and return notifications (MLLP). Default:
	// 127.0.0.1:6664.
	Notifications string
	// FHIRStore is where the FHIR server careflow delivers to (the
	// fhir-store destination) listens. Default: 127.0.0.1:6665.
	FHIRStore string
	// IdP is where the identity provider listens (GET /jwks.json, POST
	// /token), when Run starts it. Default: 127.0.0.1:6667.
	IdP string
	// IdPServer is an identity provider already started with StartIdP:
	// `careflow run --demo` starts it before the engine, which fetches
	// its keys as it starts. Run uses it instead of starting one, and
	// leaves it running. nil: Run starts its own on IdP.
	IdPServer *IdP
	// AppInterval is how often the FHIR app posts a reading to
	// careflow's apps interface (http://HTTP/fhir/apps). Default: 3s.
	AppInterval time.Duration
	// Rate is how many messages a second the EHR sends. Default: 2.
	Rate float64
	// Out receives the live summary every 2 s. Default: os.Stdout.
	Out io.Writer
	// Logger receives connection problems. Default: slog.Default().
	Logger *slog.Logger
	// Careflow, when set, says what careflow itself holds (orders by
	// state, exceptions by code): lines printed after the flows. It runs
	// in its own goroutine every careflowInterval, bounded by a timeout, so
	// a slow answer never holds up the summary; the last answer is shown.
	Careflow func(context.Context) []string
}

// Defaults.
const (
	DefaultEHR        = "127.0.0.1:2575"
	DefaultLabResults = "127.0.0.1:2576"
	DefaultLab        = "127.0.0.1:6661"
	DefaultEHRResults = "127.0.0.1:6662"
	DefaultPortal     = "127.0.0.1:6663"
	DefaultNotify     = "127.0.0.1:6664"
	DefaultHTTP       = "127.0.0.1:8080"
	DefaultRate       = 2
)

// Timings of the simulation: how long the lab takes to result an order and
// how often the summary is printed.
const (
	resultDelay      = 1500 * time.Millisecond
	summaryInterval  = 2 * time.Second
	careflowInterval = 10 * time.Second
	careflowTimeout  = 5 * time.Second
	numPatients      = 8
)

func (c Config) withDefaults() Config {
	c.EHR = cmp.Or(c.EHR, DefaultEHR)
	c.LabResults = cmp.Or(c.LabResults, DefaultLabResults)
	c.Lab = cmp.Or(c.Lab, DefaultLab)
	c.EHRResults = cmp.Or(c.EHRResults, DefaultEHRResults)
	c.Portal = cmp.Or(c.Portal, DefaultPortal)
	c.Notifications = cmp.Or(c.Notifications, DefaultNotify)
	c.FHIRStore = cmp.Or(c.FHIRStore, DefaultFHIRStore)
	c.IdP = cmp.Or(c.IdP, DefaultIdP)
	c.AppInterval = cmp.Or(c.AppInterval, DefaultAppInterval)
	c.HTTP = cmp.Or(c.HTTP, DefaultHTTP)
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Run starts the simulated systems and runs them until ctx ends, then stops
// them all and returns nil. It returns an error at once if one of them
// cannot listen (a port in use, usually by an earlier demo).
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if cfg.Rate < 0 {
		return fmt.Errorf("demo: rate %v: want a positive number of messages a second", cfg.Rate)
	}
	// Listen first, so that a port in use fails Run before anything sends.
	var opened []io.Closer
	closeAll := func() {
		for _, c := range opened {
			c.Close()
		}
	}
	lc := net.ListenConfig{}
	listen := func(addr, name string) (net.Listener, error) {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("demo: %s listener: %w", name, err)
		}
		opened = append(opened, ln)
		return ln, nil
	}
	labLn, err := listen(cfg.Lab, "lab")
	if err != nil {
		return err
	}
	resLn, err := listen(cfg.EHRResults, "ehr-results")
	if err != nil {
		return err
	}
	portalLn, err := listen(cfg.Portal, "portal")
	if err != nil {
		return err
	}
	notifyLn, err := listen(cfg.Notifications, "ehr-notifications")
	if err != nil {
		return err
	}
	storeLn, err := listen(cfg.FHIRStore, "fhir-store")
	if err != nil {
		return err
	}
	idp := cfg.IdPServer
	if idp == nil {
		if idp, err = StartIdP(ctx, cfg.IdP); err != nil {
			closeAll()
			return err
		}
		defer idp.Close()
	}

	st := &stats{}
	run := strconv.FormatInt(time.Now().Unix(), 36)
	lab := newLab(st, cfg.Logger, cfg.LabResults, run, resultDelay)
	labSrv := &mllp.Server{Handler: lab, Logger: cfg.Logger}
	resSrv := &mllp.Server{Handler: ehrResults(st), Logger: cfg.Logger}
	notifySrv := &mllp.Server{Handler: ehrNotifications(st), Logger: cfg.Logger}
	portalSrv := &http.Server{Handler: portal(st), ReadHeaderTimeout: 10 * time.Second}
	storeSrv := &http.Server{Handler: newFHIRStore(st).handler(), ReadHeaderTimeout: 10 * time.Second}
	reg := &registry{}
	app := newFHIRApp("http://"+cfg.HTTP+"/fhir/"+AppsInterface, idp, st, reg, cfg.Logger, cfg.AppInterval)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMLLP(ctx, labSrv, labLn, "lab") })
	g.Go(func() error { return serveMLLP(ctx, resSrv, resLn, "ehr-results") })
	g.Go(func() error { return serveMLLP(ctx, notifySrv, notifyLn, "ehr-notifications") })
	g.Go(func() error { return serveHTTP(ctx, portalSrv, portalLn, "portal") })
	g.Go(func() error { return serveHTTP(ctx, storeSrv, storeLn, "fhir-store") })
	g.Go(func() error { return app.run(ctx) })
	g.Go(func() error { return lab.sendResults(ctx) })
	g.Go(func() error { return lab.sendEarly(ctx) })
	updates := make(chan []byte, 16)
	g.Go(func() error { return runPortalUpdates(ctx, "http://"+cfg.HTTP+"/hl7/portal-updates", st, updates) })
	g.Go(func() error {
		gen := newEHRGenerator(uint64(time.Now().UnixNano()), run, numPatients)
		gen.resultFirst = lab.resultFirst
		return runEHR(ctx, cfg, st, gen, updates, reg)
	})
	var lines careflowLines
	if cfg.Careflow != nil {
		g.Go(func() error { lines.refresh(ctx, cfg.Careflow); return nil })
	}
	g.Go(func() error {
		t := time.NewTicker(summaryInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-t.C:
				fmt.Fprintf(cfg.Out, "--- %s\n", now.Format(time.TimeOnly))
				st.print(cfg.Out)
				lines.print(cfg.Out)
			}
		}
	})
	err = g.Wait()
	fmt.Fprintln(cfg.Out, "--- final")
	st.print(cfg.Out)
	lines.print(cfg.Out)
	return err
}

// careflowLines holds the last answer of Config.Careflow.
type careflowLines struct {
	mu    sync.Mutex
	lines []string
}

// refresh asks fn every careflowInterval until ctx ends.
func (c *careflowLines) refresh(ctx context.Context, fn func(context.Context) []string) {
	t := time.NewTicker(careflowInterval)
	defer t.Stop()
	for {
		fctx, cancel := context.WithTimeout(ctx, careflowTimeout)
		got := fn(fctx)
		cancel()
		c.mu.Lock()
		c.lines = got
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *careflowLines) print(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		fmt.Fprintln(w, l)
	}
}

func serveMLLP(ctx context.Context, s *mllp.Server, ln net.Listener, name string) error {
	if err := s.Serve(ctx, ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("demo: %s server: %w", name, err)
	}
	return nil
}

func serveHTTP(ctx context.Context, s *http.Server, ln net.Listener, name string) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("demo: %s server: %w", name, err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(sctx); err != nil {
			s.Close()
		}
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("demo: %s server: %w", name, err)
		}
		return nil
	}
}

// runEHR sends the EHR's stream at cfg.Rate. A message that could not be
// sent (careflow not up yet, a timeout) is sent again at the next tick,
// as a real EHR resends until it has an ACK. Now and then the generator
// also has a patient update their details on the portal: that goes to
// updates (dropped when the portal is behind), for runPortalUpdates.
// Once careflow has ACKed a patient's registration, reg has them, for the
// FHIR app.
func runEHR(ctx context.Context, cfg Config, st *stats, gen *ehrGenerator, updates chan<- []byte, reg *registry) error {
	client := &mllp.Client{Addr: cfg.EHR, ACKTimeout: 10 * time.Second}
	defer client.Close()
	t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer t.Stop()
	var pending []byte
	warned := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if pending == nil {
			pending = gen.next(time.Now())
			st.ehrSent.Add(1)
			if u := gen.maybePortalUpdate(time.Now()); u != nil {
				select {
				case updates <- u:
				default:
				}
			}
		}
		reply, err := client.Send(ctx, pending)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			st.ehrFailed.Add(1)
			if !warned {
				cfg.Logger.Warn("ehr: careflow not answering; resending until it does", "addr", cfg.EHR, "err", err)
				warned = true
			}
			continue
		}
		warned = false
		countACK(reply, &st.ehrACKed, &st.ehrNAKed)
		pending = nil
		reg.sync(gen.patients)
	}
}

// ehrResults is the EHR's results inbox: it acknowledges every message.
func ehrResults(st *stats) mllp.Handler {
	return mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		reply, m := ack(req.Payload, ehrApp)
		st.ehrResultsReceived.Add(1)
		if m == nil {
			st.ehrResultsUnparseable.Add(1)
		}
		return reply
	})
}

// ehrNotifications is where the EHR hears careflow's answers: it counts
// application acknowledgements by MSA-1 and return notifications by the
// exception code careflow puts in ERR-5, and acknowledges each.
func ehrNotifications(st *stats) mllp.Handler {
	return mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		reply, m := ack(req.Payload, ehrApp)
		if m == nil {
			st.notifyUnparseable.Add(1)
			return reply
		}
		st.notified(m.Get("MSH-9.1"), m.Get("MSA-1"), m.Get("ERR-5.1"))
		return reply
	})
}

// maxPortalBody bounds one event document the portal reads.
const maxPortalBody = 4 << 20

// portal is the patient portal's event endpoint: POST /events with a JSON
// document, answered 200 when it is JSON and 400 otherwise.
func portal(st *stats) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPortalBody))
		if err != nil || !json.Valid(body) {
			st.portalBad.Add(1)
			http.Error(w, "want a JSON document", http.StatusBadRequest)
			return
		}
		st.portalReceived.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	return mux
}
