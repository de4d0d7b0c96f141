// Package orderindex keeps one order number to one patient. Route tracks
// orders per patient, on the patient's partition, so it cannot see that a
// number it tracks for one patient is also in use for another: an EHR
// that reuses numbers, two feeds numbering alike, a typo. Route therefore
// claims every order number it sees placed on careflow.order-claims,
// keyed by the number, and this stage keeps, per number, the patient that
// claimed it first (a stages.Table with changelog careflow.state.order-
// index). A claim by another patient raises order_number_reused on
// careflow.exceptions. The two orders stay apart: each patient's order is
// tracked, and its results matched, within that patient only, so nothing
// is merged across patients.
package orderindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// CodeReused is the exception a number claimed by a second patient raises.
const CodeReused = "order_number_reused"

// Claim is route's record that a patient placed an order number.
type Claim struct {
	Order         string    `json:"order"` // number^namespace
	PatientKey    string    `json:"patient_key"`
	MessageID     string    `json:"message_id"`
	CorrelationID string    `json:"correlation_id"`
	ControlID     string    `json:"control_id"`
	Interface     string    `json:"source_interface"`
	At            time.Time `json:"at"`
}

// ClaimRecord is c as route writes it.
func ClaimRecord(c Claim, h stages.Headers) (stages.Envelope, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return stages.Envelope{}, err
	}
	return stages.Envelope{Topic: topics.OrderClaims, Key: []byte(c.Order), Value: b, Headers: h}, nil
}

// owner is a number's entry in the index.
type owner struct {
	PatientKey string    `json:"patient_key"`
	MessageID  string    `json:"message_id"`
	At         time.Time `json:"at"`
}

// Config is what New needs.
type Config struct {
	Index   *stages.Table // changelog topics.OrderIndex; the runner commits, aborts and restores it
	Serde   *avro.Serde
	Metrics prometheus.Registerer
	Now     func() time.Time
}

// Stage is the order index processor.
type Stage struct {
	index      *stages.Table
	serde      *avro.Serde
	now        func() time.Time
	exceptions *prometheus.CounterVec
}

// New checks cfg.
func New(cfg Config) (*Stage, error) {
	if cfg.Index == nil || cfg.Serde == nil {
		return nil, errors.New("orderindex: Index and Serde are required")
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "careflow_exceptions_total",
		Help: "Exceptions raised (careflow.exceptions), by code.",
	}, []string{"code"})
	c, err := stages.Register(cfg.Metrics, c)
	if err != nil {
		return nil, err
	}
	s := &Stage{index: cfg.Index, serde: cfg.Serde, now: cfg.Now, exceptions: c}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Close implements stages.Processor.
func (s *Stage) Close(context.Context) error { return nil }

// Process applies one claim: the first patient to claim a number owns it
// (for lifecycle.Retention after its claim, as route keeps orders); a
// claim by another patient within that time is an exception.
func (s *Stage) Process(_ context.Context, in stages.Envelope) ([]stages.Envelope, error) {
	var c Claim
	if err := json.Unmarshal(in.Value, &c); err != nil || c.Order == "" || c.PatientKey == "" {
		return nil, stages.Permanent(stages.CodeDecode, "", fmt.Errorf("orderindex: claim at %s partition %d offset %d is not one route writes", in.Topic, in.Partition, in.Offset))
	}
	now := s.now()
	h := in.Headers.Derive(topics.StageRoute, now)
	var o owner
	if b, ok := s.index.Get(in.Partition, c.Order); ok && json.Unmarshal(b, &o) == nil &&
		o.PatientKey != "" && now.Sub(o.At) <= lifecycle.Retention {
		if o.PatientKey == c.PatientKey {
			return nil, nil // the same patient again: a resend, a replay
		}
		x := &avro.Exception{
			ExceptionID: identity.OutcomeID(c.MessageID, "exception", CodeReused, c.Order),
			Code:        CodeReused, Stage: topics.StageRoute, Interface: c.Interface,
			MessageID: c.MessageID, CorrelationID: c.CorrelationID, ControlID: c.ControlID,
			PatientKey: c.PatientKey, PlacerOrder: c.Order,
			Reason: fmt.Sprintf("order number %s was placed for another patient first (message %s at %s); the two are tracked apart, not merged",
				c.Order, o.MessageID, o.At.UTC().Format(time.RFC3339)),
			Action: avro.ActionDelivered, At: now.UTC(),
		}
		b, err := s.serde.Encode(x)
		if err != nil {
			return nil, stages.Transient(stages.CodeEncode, fmt.Errorf("orderindex: encode exception: %w", err))
		}
		s.exceptions.WithLabelValues(CodeReused).Inc()
		// Keyed by the claiming patient, like every exception about them.
		return []stages.Envelope{{Topic: topics.Exceptions, Key: []byte(c.PatientKey), Value: b, Headers: h}}, nil
	}
	b, err := json.Marshal(owner{PatientKey: c.PatientKey, MessageID: c.MessageID, At: c.At})
	if err != nil {
		return nil, err
	}
	return []stages.Envelope{s.index.Put(in.Partition, c.Order, b, h)}, nil
}
