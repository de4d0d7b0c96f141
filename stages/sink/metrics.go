// This file holds the sink's Prometheus series, the watcher that refreshes
// the backlog per destination from ClickHouse, and WatchLag, which
// refreshes every careflow consumer group's lag per partition.

package sink

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/stages"
)

// Metrics are the sink's series. Labels hold stage, group, topic,
// partition and destination names only.
type Metrics struct {
	BatchRows     prometheus.Histogram
	InsertSeconds prometheus.Histogram
	InsertErrors  prometheus.Counter
	Rows          prometheus.Counter
	Lag           *prometheus.GaugeVec   // stage, group, topic, partition
	Backlog       *prometheus.GaugeVec   // destination
	SLADeliveries *prometheus.CounterVec // destination
	SLABreaches   *prometheus.CounterVec // destination
}

// NewMetrics creates the series and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		BatchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "careflow_sink_batch_rows", Help: "Rows per ClickHouse insert.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		InsertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "careflow_sink_insert_seconds", Help: "Time to insert one batch into ClickHouse, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		InsertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "careflow_sink_insert_errors_total", Help: "ClickHouse connections and inserts that failed and were retried.",
		}),
		Rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "careflow_sink_rows_total", Help: "Rows inserted into ClickHouse.",
		}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "careflow_consumer_lag", Help: "Records a stage's consumer group has not yet committed, per partition.",
		}, []string{"stage", "group", "topic", "partition"}),
		Backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "careflow_destination_backlog", Help: "Messages routed to a destination with no final result yet (from ClickHouse).",
		}, []string{"destination"}),
		SLADeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_sla_deliveries_total", Help: "Deliveries the sink measured against their SLA.",
		}, []string{"destination"}),
		SLABreaches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_sla_breaches_total", Help: "Deliveries later than their route's or destination's SLA (ingest to acknowledged).",
		}, []string{"destination"}),
	}
	m.BatchRows, m.InsertSeconds = stages.MustRegister(reg, m.BatchRows), stages.MustRegister(reg, m.InsertSeconds)
	m.InsertErrors, m.Rows = stages.MustRegister(reg, m.InsertErrors), stages.MustRegister(reg, m.Rows)
	m.Lag, m.Backlog = stages.MustRegister(reg, m.Lag), stages.MustRegister(reg, m.Backlog)
	m.SLADeliveries, m.SLABreaches = stages.MustRegister(reg, m.SLADeliveries), stages.MustRegister(reg, m.SLABreaches)
	return m
}

// watch refreshes the backlog every MetricsEvery until ctx ends.
func (s *Sink) watch(ctx context.Context, store *analytics.Store) {
	t := time.NewTicker(s.cfg.MetricsEvery)
	defer t.Stop()
	for {
		s.refresh(ctx, store)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sink) refresh(ctx context.Context, store *analytics.Store) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MetricsEvery)
	defer cancel()
	backlog, err := store.Backlog(ctx)
	if err != nil {
		s.log.Debug("backlog", "err", err)
		return
	}
	s.cfg.Metrics.Backlog.Reset()
	for d, n := range backlog {
		s.cfg.Metrics.Backlog.WithLabelValues(d).Set(float64(n))
	}
}

// WatchLag sets m.Lag for every careflow consumer group (groups named
// "careflow-*") every interval until ctx ends. It needs no ClickHouse: the
// engine runs it wherever the sink stage is selected.
func WatchLag(ctx context.Context, cl *kgo.Client, m *Metrics, every time.Duration, log *slog.Logger) {
	adm := kadm.NewClient(cl)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, every)
		if err := refreshLag(lctx, adm, m); err != nil && ctx.Err() == nil {
			log.Debug("consumer lag", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshLag sets the lag of every careflow consumer group.
func refreshLag(ctx context.Context, adm *kadm.Client, m *Metrics) error {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return err
	}
	var groups []string
	for _, g := range listed.Groups() {
		if strings.HasPrefix(g, "careflow-") {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return nil
	}
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return err
	}
	m.Lag.Reset()
	lags.Each(func(g kadm.DescribedGroupLag) {
		if g.Error() != nil {
			return
		}
		stage, _, _ := strings.Cut(strings.TrimPrefix(g.Group, "careflow-"), "-")
		for _, l := range g.Lag.Sorted() {
			if l.Err != nil || l.Lag < 0 {
				continue
			}
			m.Lag.WithLabelValues(stage, g.Group, l.Topic, strconv.Itoa(int(l.Partition))).Set(float64(l.Lag))
		}
	})
	return nil
}
