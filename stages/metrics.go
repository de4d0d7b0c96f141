package stages

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the per-stage Prometheus series the runner keeps. Labels hold
// stage, interface, topic and error code names only: never patient data.
type Metrics struct {
	In           *prometheus.CounterVec   // stage, interface
	Out          *prometheus.CounterVec   // stage, topic, interface
	Failed       *prometheus.CounterVec   // stage, interface, code
	DeadLettered *prometheus.CounterVec   // stage, interface
	Retries      *prometheus.CounterVec   // stage, interface
	Aborts       *prometheus.CounterVec   // stage
	Paused       *prometheus.GaugeVec     // stage, group
	Latency      *prometheus.HistogramVec // stage
}

// NewMetrics creates the series and registers them on reg (nil: not
// registered, for tests and tools).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		In: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_stage_records_in_total", Help: "Records a stage consumed.",
		}, []string{"stage", "interface"}),
		Out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_stage_records_out_total", Help: "Records a stage produced and committed, by output topic.",
		}, []string{"stage", "topic", "interface"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_stage_records_failed_total", Help: "Records a stage could not process, by error code.",
		}, []string{"stage", "interface", "code"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_stage_dead_lettered_total", Help: "Records written to a stage's dead-letter topic.",
		}, []string{"stage", "interface"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_stage_retries_total", Help: "Transient failures retried.",
		}, []string{"stage", "interface"}),
		Aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_stage_transactions_aborted_total", Help: "Transactions that did not commit (their records are reprocessed).",
		}, []string{"stage"}),
		Paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "careflow_stage_paused", Help: "1 while a stage's input is paused because its destination is unavailable.",
		}, []string{"stage", "group"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "careflow_stage_latency_seconds", Help: "Time a stage took per record.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"stage"}),
	}
	m.In, m.Out, m.Failed = MustRegister(reg, m.In), MustRegister(reg, m.Out), MustRegister(reg, m.Failed)
	m.DeadLettered, m.Retries, m.Aborts = MustRegister(reg, m.DeadLettered), MustRegister(reg, m.Retries), MustRegister(reg, m.Aborts)
	m.Paused, m.Latency = MustRegister(reg, m.Paused), MustRegister(reg, m.Latency)
	return m
}
