package ingest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/careflow-health/careflow/stages"
)

// Results of one message, the result label of careflow_ingest_messages_total.
const (
	resultAccepted = "accepted" // on careflow.raw, AA/CA sent
	resultInvalid  = "invalid"  // on careflow.raw but fails the accept rules (ack: validated): AE/CE sent
	resultRejected = "rejected" // unparseable or oversize: AR/CR sent, dead-lettered
	resultError    = "error"    // Kafka write failed: AR/CR sent, sender resends
	resultRefused  = "refused"  // the writer may not write here: AR or 401/403, nothing stored
)

type metrics struct {
	messages    *prometheus.CounterVec
	ackSeconds  *prometheus.HistogramVec
	connections *prometheus.GaugeVec
	refused     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_ingest_messages_total",
			Help: "Inbound messages by interface and result (accepted, rejected, error, refused).",
		}, []string{"interface", "result"}),
		ackSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "careflow_ingest_ack_seconds",
			Help: "Time from receiving a message to its ACK being ready, Kafka write included.",
			// From a fast local write to a sender's ACK timeout.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"interface"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "careflow_ingest_connections",
			Help: "Open MLLP connections by interface.",
		}, []string{"interface"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "careflow_ingest_connections_refused_total",
			Help: "MLLP connections refused or closed by the listener, by reason: rejected (at the limit, nothing idle to close), evicted (idle, closed to make room), handshake_failed, first_byte_timeout.",
		}, []string{"interface", "reason"}),
	}
	var errs [4]error
	m.messages, errs[0] = stages.Register(reg, m.messages)
	m.ackSeconds, errs[1] = stages.Register(reg, m.ackSeconds)
	m.connections, errs[2] = stages.Register(reg, m.connections)
	m.refused, errs[3] = stages.Register(reg, m.refused)
	return m, errors.Join(errs[:]...)
}
