// This file is the sender's side of the return path: application
// acknowledgements in HL7's enhanced mode (the sender's MSH-16 asks for
// one once every destination the message went to has answered) and
// return notifications (an order exception the placer must see). Both
// are ClinicalEvents carrying an Acknowledgment, written to the inbound
// interface's reply_to destination and delivered like any message, behind
// its breaker. docs/workflows.md says what the sender receives.

package route

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// Policy is one inbound interface's return path (its YAML reply_to,
// reply_timeout, correlation_wait and unknown_order).
type Policy struct {
	ReplyTo         string        // destination of acknowledgements and notifications; "" for none
	ReplyTimeout    time.Duration // an acknowledgement's wait for its destinations. Default: 5m.
	CorrelationWait time.Duration // a result's wait for an order careflow does not know; 0: none
	HoldUnknown     bool          // after the wait, hold the result instead of delivering it
	// Resequence holds every ADT message of the interface this long and
	// routes each patient's in event-time order (out_of_order: hold), so
	// an update overtaken by less than this is put back in order instead
	// of refused as stale_update. 0: refuse (out_of_order: reject).
	Resequence time.Duration
}

func (s *Stage) policy(iface string) Policy {
	p := s.policies[iface]
	if p.ReplyTimeout <= 0 {
		p.ReplyTimeout = 5 * time.Minute
	}
	return p
}

// Application acknowledgement codes and the reasons careflow gives.
const (
	CodeNoAnswer    = "no_answer"               // a destination did not answer within reply_timeout
	CodeStaleUpdate = avro.ExceptionStaleUpdate // the update was older than the patient's last
	CodeAwaiting    = "route.awaiting_order"    // held outcome: a result waits for its order
)

// pendingReply is an application acknowledgement waiting for the answers
// of the destinations its message was routed to.
type pendingReply struct {
	MessageID   string       `json:"msg"`
	ControlID   string       `json:"control"` // the sender's MSH-10: MSA-2
	Interface   string       `json:"interface"`
	Mode        string       `json:"mode"` // AL or ER (MSH-16)
	Trigger     string       `json:"trigger"`
	Correlation string       `json:"corr"`
	Until       time.Time    `json:"until"`
	Dests       []destAnswer `json:"dests"`
}

// destAnswer is one destination's answer to a message.
type destAnswer struct {
	Name     string `json:"name"`
	Code     string `json:"code,omitempty"`   // "" while waiting; AA or AE
	Error    string `json:"error,omitempty"`  // careflow's error code (ack.AE, http.422)
	Location string `json:"loc,omitempty"`    // the destination's ERR location
	Text     string `json:"text,omitempty"`   // careflow's words
	Detail   string `json:"detail,omitempty"` // the destination's words, carried back to the sender
}

// appAckMode is the application acknowledgement ev's sender asked for:
// AL or ER, or "" for none (hl7v2.AppAckRequested).
func appAckMode(ev *avro.ClinicalEvent) string {
	return hl7v2.AppAckRequested(hl7v2.Header{AcceptAckType: ev.Provenance.AcceptAckType, AppAckType: ev.Provenance.AppAckType})
}

// await records that ev's sender wants an application acknowledgement
// once the destinations in matches have answered, or sends it at once
// when no destination takes the message.
func (s *Stage) await(ks *keyState, in stages.Envelope, ev *avro.ClinicalEvent, matches []match, pol Policy, now time.Time) ([]stages.Envelope, error) {
	mode := appAckMode(ev)
	if ks == nil || mode == "" || pol.ReplyTo == "" {
		return nil, nil
	}
	r := pendingReply{MessageID: ev.EventID, ControlID: ev.Provenance.ControlID, Interface: ev.Provenance.Interface,
		Mode: mode, Trigger: ev.TriggerEvent, Correlation: ev.CorrelationID, Until: now.Add(pol.ReplyTimeout)}
	for _, m := range matches {
		if m.destination != pol.ReplyTo {
			r.Dests = append(r.Dests, destAnswer{Name: m.destination})
		}
	}
	if ks.e.wasAnswered(r.MessageID) || slices.ContainsFunc(ks.e.Replies, func(x pendingReply) bool { return x.MessageID == r.MessageID }) {
		return nil, nil // a replay of a message already awaited, or answered
	}
	if len(r.Dests) == 0 {
		return s.finish(ks, r, pol, now, "no destination takes this message")
	}
	ks.e.Replies = append(ks.e.Replies, r)
	if len(ks.e.Replies) > maxReplies {
		ks.e.Replies[0].Until = now // the oldest is answered at the next tick
	}
	return nil, nil
}

// maxReplies bounds the acknowledgements one key keeps waiting.
const maxReplies = 64

// refuse answers ev's sender at once, when it asked for an application
// acknowledgement and careflow will not deliver the message: it was stale
// or held. x says why.
func (s *Stage) refuse(ks *keyState, ev *avro.ClinicalEvent, pol Policy, code, reason string, now time.Time) ([]stages.Envelope, error) {
	mode := appAckMode(ev)
	if ks == nil || mode == "" || pol.ReplyTo == "" || ks.e.wasAnswered(ev.EventID) {
		return nil, nil
	}
	r := pendingReply{MessageID: ev.EventID, ControlID: ev.Provenance.ControlID, Interface: ev.Provenance.Interface,
		Mode: mode, Trigger: ev.TriggerEvent, Correlation: ev.CorrelationID,
		Dests: []destAnswer{{Name: "careflow", Code: "AE", Error: code, Text: reason}}}
	return s.finish(ks, r, pol, now, "")
}

// answered records dest's answer to message id, and sends the
// acknowledgement when it was the last one awaited.
func (s *Stage) answered(ks *keyState, id string, a destAnswer, now time.Time) ([]stages.Envelope, error) {
	if ks == nil {
		return nil, nil
	}
	i := slices.IndexFunc(ks.e.Replies, func(r pendingReply) bool { return r.MessageID == id })
	if i < 0 {
		return nil, nil
	}
	r := &ks.e.Replies[i]
	j := slices.IndexFunc(r.Dests, func(d destAnswer) bool { return d.Name == a.Name })
	if j < 0 || r.Dests[j].Code != "" {
		return nil, nil // not routed there, or answered before (a replay)
	}
	r.Dests[j] = a
	if slices.ContainsFunc(r.Dests, func(d destAnswer) bool { return d.Code == "" }) {
		return nil, nil
	}
	done := *r
	ks.e.Replies = slices.Delete(ks.e.Replies, i, i+1)
	return s.finish(ks, done, s.policy(done.Interface), now, "")
}

// expireReplies sends, as AE, every acknowledgement of ks whose
// reply_timeout has passed, naming the destinations that did not answer.
func (s *Stage) expireReplies(ks *keyState, now time.Time) ([]stages.Envelope, error) {
	var out []stages.Envelope
	kept := ks.e.Replies[:0]
	var due []pendingReply
	for _, r := range ks.e.Replies {
		if now.Before(r.Until) {
			kept = append(kept, r)
			continue
		}
		due = append(due, r)
	}
	ks.e.Replies = kept
	for _, r := range due {
		for i := range r.Dests {
			if r.Dests[i].Code == "" {
				r.Dests[i] = destAnswer{Name: r.Dests[i].Name, Code: "AE", Error: CodeNoAnswer,
					Text: "no answer from " + r.Dests[i].Name}
			}
		}
		envs, err := s.finish(ks, r, s.policy(r.Interface), now, "")
		if err != nil {
			return nil, err
		}
		out = append(out, envs...)
	}
	return out, nil
}

// finish writes r's acknowledgement: AA when every destination accepted
// (text, when given, says more), else AE with one ERR per destination
// that did not. ER asks only for the AE.
func (s *Stage) finish(ks *keyState, r pendingReply, pol Policy, now time.Time, text string) ([]stages.Envelope, error) {
	if pol.ReplyTo == "" {
		return nil, nil
	}
	ack := &avro.Acknowledgment{Code: "AA", ControlID: r.ControlID, Text: text}
	var failed []string
	for _, d := range r.Dests {
		if d.Code == "AA" {
			continue
		}
		ack.Code = "AE"
		failed = append(failed, d.Text)
		msg := d.Text
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		ack.Errors = append(ack.Errors, avro.AckError{Code: "207", ApplicationCode: d.Error, Location: d.Location, Severity: "E", Text: msg})
	}
	if ks != nil && ks.loaded {
		ks.e.remember(r.MessageID, now)
	}
	if ack.Code == "AA" && r.Mode == "ER" {
		return nil, nil
	}
	if ack.Code == "AE" {
		ack.Text = strings.Join(failed, "; ")
	}
	id := identity.OutcomeID(r.MessageID, topics.StageRoute, "app-ack")
	ev := &avro.ClinicalEvent{EventID: id, CorrelationID: r.Correlation, IdempotencyKey: id, EventType: "acknowledgment",
		MessageType: "ACK", TriggerEvent: r.Trigger, Acknowledgment: ack,
		Provenance: avro.Provenance{Interface: r.Interface, MessageID: id, IngestTime: now.UTC()}}
	env, err := s.replyEnvelope(ks, ev, pol.ReplyTo, now)
	if err != nil {
		return nil, err
	}
	s.metrics.replies.WithLabelValues(r.Interface, ack.Code).Inc()
	return []stages.Envelope{env}, nil
}

// notify builds the return notification of order exception x for the
// interface that placed the order, an ORR^O02 with ORC-1 UA (rejected) or
// DE (data errors: a result careflow would not take silently); none when
// careflow does not know where the order came from or that interface has
// no reply_to. ev is the message that raised it, when it names the
// patient.
func (s *Stage) notify(ks *keyState, ev *avro.ClinicalEvent, triggerID string, x lifecycle.Exception, now time.Time) ([]stages.Envelope, error) {
	if ks == nil || x.Order == "" || x.Code == lifecycle.LateAcceptance || x.Code == lifecycle.LateResult {
		// Lateness is the estate's to watch (careflow orders --late,
		// the exception's metric and row), not a message to the EHR.
		return nil, nil
	}
	i := slices.IndexFunc(ks.e.Orders, func(o lifecycle.Order) bool { return o.Placer == x.Order })
	if i < 0 {
		return nil, nil
	}
	ord := ks.e.Orders[i]
	pol := s.policy(ord.Interface)
	if pol.ReplyTo == "" {
		return nil, nil
	}
	control := "DE"
	if x.Code == lifecycle.OrderRejected {
		control = "UA"
	}
	o := avro.Order{Control: control}
	o.PlacerOrderNumber, o.PlacerNamespace, _ = strings.Cut(ord.Placer, "^")
	o.FillerOrderNumber, o.FillerNamespace, _ = strings.Cut(ord.Filler, "^")
	if ord.State == lifecycle.Cancelled {
		o.Status = "CA"
	}
	text := x.Reason
	if x.Detail != "" {
		text += ": " + x.Detail
	}
	id := identity.OutcomeID(triggerID, topics.StageRoute, "notify", x.Code, x.Order)
	n := &avro.ClinicalEvent{EventID: id, CorrelationID: ord.CorrelationID, IdempotencyKey: id, EventType: "acknowledgment",
		MessageType: "ORR", TriggerEvent: "O02", Orders: []avro.Order{o},
		Acknowledgment: &avro.Acknowledgment{Code: "AE", ControlID: ord.ControlID, Text: x.Reason,
			Errors: []avro.AckError{{Code: "207", ApplicationCode: x.Code, Severity: "E", Text: text}}},
		Provenance: avro.Provenance{Interface: ord.Interface, MessageID: id, IngestTime: now.UTC()}}
	if ev != nil && len(ev.Patient.Identifiers) > 0 {
		n.Patient = avro.Patient{Identifiers: ev.Patient.Identifiers}
	}
	env, err := s.replyEnvelope(ks, n, pol.ReplyTo, now)
	if err != nil {
		return nil, err
	}
	s.metrics.notifications.WithLabelValues(ord.Interface, x.Code).Inc()
	return []stages.Envelope{env}, nil
}

// notifyStale tells the sender of a stale ADT update that it was not
// delivered: an ACK with AE and ERR-5 stale_update, MSA-2 its MSH-10.
func (s *Stage) notifyStale(ks *keyState, ev *avro.ClinicalEvent, pol Policy, reason string, now time.Time) ([]stages.Envelope, error) {
	if pol.ReplyTo == "" {
		return nil, nil
	}
	id := identity.OutcomeID(ev.EventID, topics.StageRoute, "notify", CodeStaleUpdate)
	n := &avro.ClinicalEvent{EventID: id, CorrelationID: ev.CorrelationID, IdempotencyKey: id, EventType: "acknowledgment",
		MessageType: "ACK", TriggerEvent: ev.TriggerEvent,
		Acknowledgment: &avro.Acknowledgment{Code: "AE", ControlID: ev.Provenance.ControlID, Text: reason,
			Errors: []avro.AckError{{Code: "207", ApplicationCode: CodeStaleUpdate, Severity: "E", Text: reason}}},
		Provenance: avro.Provenance{Interface: ev.Provenance.Interface, MessageID: id, IngestTime: now.UTC()}}
	env, err := s.replyEnvelope(ks, n, pol.ReplyTo, now)
	if err != nil {
		return nil, err
	}
	s.metrics.notifications.WithLabelValues(ev.Provenance.Interface, CodeStaleUpdate).Inc()
	return []stages.Envelope{env}, nil
}

// replyEnvelope is ev on dest's outbound topic, keyed like the record it
// answers so it follows that key's order.
func (s *Stage) replyEnvelope(ks *keyState, ev *avro.ClinicalEvent, dest string, now time.Time) (stages.Envelope, error) {
	b, err := s.serde.Encode(ev)
	if err != nil {
		return stages.Envelope{}, stages.Transient(CodeEncode, fmt.Errorf("encode %s^%s for %s: %w", ev.MessageType, ev.TriggerEvent, dest, err))
	}
	var h stages.Headers
	h.Set(topics.HeaderMessageID, ev.EventID)
	h.Set(topics.HeaderCorrelationID, ev.CorrelationID)
	h.Set(topics.HeaderIdempotencyKey, ev.IdempotencyKey)
	h.Set(topics.HeaderInterface, ev.Provenance.Interface)
	h.Set(topics.HeaderDestination, dest)
	h.Set(topics.StageTime(topics.StageRoute), now.UTC().Format(topics.TimeFormat))
	var key []byte
	if ks != nil {
		key = []byte(ks.key)
	}
	return stages.Envelope{Topic: topics.Outbound(dest), Key: key, Value: b, Headers: h}, nil
}
