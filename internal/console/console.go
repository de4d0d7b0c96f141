// Package console is the operators' web console, served on the admin port
// under /console/: the estate (every interface and destination, live), the
// message viewer (search, journey, the forms a message took, its ACKs), dead
// letters with replay, exceptions, the review queue, charts from ClickHouse,
// and who may do what (docs/console.md).
//
// Pages are rendered on the server from html/template; htmx, embedded in
// the binary, refreshes parts of them and posts forms without a build step
// or a CDN. Everything the console shows comes from careflow's own topics,
// the engine's metrics and ClickHouse: it keeps no state of its own beyond
// logins, so any number of engines may serve it.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/stages/audit"
)

// Prefix is where the console is served on the admin port. The root
// belongs to the embedded schema registry.
const Prefix = "/console/"

//go:embed static templates
var files embed.FS

// Config wires a Console.
type Config struct {
	// Estate is the running configuration: interfaces, routes,
	// destinations, and the console section.
	Estate *config.Config
	Users  *Users
	// Kafka are the client options reading careflow's topics and writing
	// replays and review decisions.
	Kafka []kgo.Opt
	Serde *avro.Serde
	// Analytics is the ClickHouse store; nil without one (or until
	// UseAnalytics gives one), when search, journeys and charts say so and
	// the estate shows what the metrics alone give.
	Analytics *analytics.Store
	// Metrics are this process's metrics: breaker states, rates, lag.
	Metrics prometheus.Gatherer
	Audit   *audit.Recorder
	// Render renders a canonical event as destination would be sent it;
	// nil shows no rendered forms.
	Render func(destination string, ev *avro.ClinicalEvent) ([]byte, error)
	// Observer names this careflow in audit records.
	Observer string
	// Secure marks the session cookie Secure (the admin port is TLS).
	Secure bool
	Logger *slog.Logger
	Now    func() time.Time
}

// Console serves the console's pages.
type Console struct {
	cfg      Config
	log      *slog.Logger
	pages    *pages
	sessions *sessions
	logins   *loginGuard
	rates    *rates
	mux      *http.ServeMux
	store    atomic.Pointer[analytics.Store]
}

// UseAnalytics gives the console its ClickHouse store once it can be
// opened (ClickHouse may start after careflow).
func (c *Console) UseAnalytics(s *analytics.Store) { c.store.Store(s) }

func (c *Console) analytics() *analytics.Store { return c.store.Load() }

// New makes a Console; it serves nothing until Handler is mounted, and Run
// must run while it is in use.
func New(cfg Config) (*Console, error) {
	if cfg.Estate == nil || cfg.Users == nil || cfg.Serde == nil {
		return nil, errors.New("console: configuration, users and serde are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{
		cfg: cfg, log: cfg.Logger.With("component", "console"), pages: p,
		sessions: newSessions(cfg.Estate.Console.SessionTTL, cfg.Now),
		logins:   newLoginGuard(cfg.Now),
		rates:    newRates(),
	}
	if cfg.Analytics != nil {
		c.store.Store(cfg.Analytics)
	}
	c.routes()
	return c, nil
}

// Handler serves the console; mount it at Prefix.
func (c *Console) Handler() http.Handler { return c.mux }

// Run samples the counters the estate's rates come from and expires
// logins, until ctx ends.
func (c *Console) Run(ctx context.Context) error {
	tick := time.NewTicker(rateSample)
	defer tick.Stop()
	c.sampleRates()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			c.sampleRates()
			c.sessions.expire()
		}
	}
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix, staticFiles()))
	m.HandleFunc("GET "+Prefix+"login", c.loginPage)
	m.HandleFunc("POST "+Prefix+"login", c.login)
	m.Handle("POST "+Prefix+"logout", c.authed(config.RoleViewer, c.logout))

	m.Handle("GET "+Prefix+"{$}", c.authed(config.RoleViewer, c.estatePage))
	m.Handle("GET "+Prefix+"estate/live", c.authed(config.RoleViewer, c.estateLive))
	m.Handle("GET "+Prefix+"messages", c.authed(config.RoleViewer, c.messagesPage))
	m.Handle("GET "+Prefix+"messages/{id}", c.authed(config.RoleViewer, c.messagePage))
	m.Handle("GET "+Prefix+"deadletters", c.authed(config.RoleViewer, c.deadLettersPage))
	m.Handle("GET "+Prefix+"deadletters/{id}", c.authed(config.RoleViewer, c.deadLetterPage))
	m.Handle("POST "+Prefix+"deadletters/replay", c.authed(config.RoleOperator, c.replay))
	m.Handle("GET "+Prefix+"exceptions", c.authed(config.RoleViewer, c.exceptionsPage))
	m.Handle("GET "+Prefix+"reviews", c.authed(config.RoleViewer, c.reviewsPage))
	m.Handle("POST "+Prefix+"reviews/{id}/{decision}", c.authed(config.RoleOperator, c.decide))
	m.Handle("GET "+Prefix+"charts", c.authed(config.RoleViewer, c.chartsPage))
	m.Handle("GET "+Prefix+"users", c.authed(config.RoleAdmin, c.usersPage))
	m.Handle("GET "+Prefix+"audit", c.authed(config.RoleAdmin, c.auditPage))
	m.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusNotFound, fmt.Errorf("no console page at %s", r.URL.Path))
	})
	c.mux = m
}
