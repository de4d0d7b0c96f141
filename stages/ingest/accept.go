package ingest

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// Error codes ingest puts on dead letters beyond hl7v2's parse codes.
const (
	CodeTooLarge    = "ingest.too_large"
	CodeNoControlID = "ingest.no_control_id" // MSH-10 is empty
	CodePanic       = "ingest.panic"         // the reader panicked on this input (a bug)
)

// receipt is one message as a transport hands it over: where it came in,
// how, from whom, and when its first byte arrived.
type receipt struct {
	in        *Interface
	transport string
	writer    Writer
	payload   []byte
	start     time.Time
}

// accept is the path every transport shares: parse the payload, check the
// sender, write it to careflow.raw, and return the ACK to send with the
// result label. The ACK is AA (CA in enhanced mode) only once Kafka has
// acknowledged the write and, for an interface with Rules in original
// mode, the message passed them (AE, or AR for a type or version the
// interface does not take, with the rule's ERR otherwise; the message is
// stored either way). Unparseable input gets AR/CR with an ERR segment
// and is dead-lettered; a sender the interface does not allow gets AR/CR
// and nothing is stored; a failed Kafka write gets AR/CR with ERR 207 so
// the sender keeps the message and resends.
//
// A panic while reading the message (a parser bug meeting odd input) is
// answered like unparseable input: AR, and the bytes dead-lettered; the
// listener and the engine keep serving.
func (s *Stage) accept(ctx context.Context, r receipt) (ack []byte, result string) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("ingest panicked reading a message; rejecting it", "interface", r.in.Name, "transport", r.transport,
				"bytes", len(r.payload), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			ack, result = s.rejectAfterPanic(ctx, r)
		}
	}()
	return s.acceptMessage(ctx, r)
}

// rejectAfterPanic answers AR for input that made the reader panic; if even
// the header cannot be peeked, the ACK is a minimal one.
func (s *Stage) rejectAfterPanic(ctx context.Context, r receipt) (ack []byte, result string) {
	defer func() {
		if recover() != nil {
			ack = hl7v2.BuildACK(hl7v2.Header{}, hl7v2.DefaultDelimiters, hl7v2.AckAR, hl7v2.ACKOptions{
				ControlID: identity.ACKControlID(identity.NewMessageID()), Now: time.Now(),
				Errors: []hl7v2.AckError{{Code: "207", Text: "message could not be read"}},
			})
			result = resultError
		}
	}()
	return s.reject(ctx, r, identity.NewMessageID(), s.cfg.Now().UTC(), CodePanic, "", "message could not be read (internal error)")
}

func (s *Stage) acceptMessage(ctx context.Context, r receipt) ([]byte, string) {
	defer func() { s.metrics.ackSeconds.WithLabelValues(r.in.Name).Observe(time.Since(r.start).Seconds()) }()
	now := s.cfg.Now().UTC()
	id := identity.NewMessageID()
	// Who sent it comes before reading it: a sender the interface does
	// not allow is refused whatever its bytes are, and nothing of it is
	// stored (not even as a dead letter).
	if len(r.in.Writers.SendingApplications) > 0 || len(r.in.Writers.SendingFacilities) > 0 {
		h, d := hl7v2.PeekHeader(r.payload)
		if ref := r.in.Writers.checkSender(r.in.Name, h, d); ref != nil {
			return s.refuse(r, h, d, ref), resultRefused
		}
	}
	// Everything inside careflow is UTF-8: the payload is read in the
	// character set MSH-18 declares (else the interface's), and bytes that
	// set does not define are refused here, at their field, rather than
	// turned into replacement characters downstream. Payload stays as sent.
	text, charset, err := hl7v2.DecodeMessage(r.payload, "", r.in.Charset)
	if err != nil {
		return s.rejectParse(ctx, r, id, now, err)
	}
	msg, err := hl7v2.Parse(text)
	if err != nil {
		return s.rejectParse(ctx, r, id, now, err)
	}
	h := msg.Header()
	if err := msg.ValidUTF8(); err != nil {
		// A \X..\ escape that spells bytes no character can be.
		return s.rejectParse(ctx, r, id, now, err)
	}
	if !identity.HasControlID(h.ControlID) {
		// A message the sender cannot match an ACK to, and careflow
		// cannot recognise a resend of, is not taken.
		return s.reject(ctx, r, id, now, CodeNoControlID, "MSH-10", "MSH-10 (message control id) is empty; every message needs its own")
	}
	// A number that fails its check digit is not used to key anyone.
	patientKey, _ := r.in.Identity.PatientKey(msg)
	raw := &avro.RawMessage{
		MessageID:          id,
		CorrelationID:      id,
		IdempotencyKey:     identity.IdempotencyKey(msg),
		Interface:          r.in.Name,
		Transport:          r.transport,
		ReceivedAt:         now,
		Payload:            r.payload,
		MessageType:        h.MessageType,
		TriggerEvent:       h.TriggerEvent,
		ControlID:          h.ControlID,
		Version:            h.Version,
		SendingApplication: h.SendingApplication,
		SendingFacility:    h.SendingFacility,
		PatientKey:         patientKey,
		Charset:            charset,
		Writer:             r.writer.String(),
	}
	enhanced := hl7v2.AckModeEnhanced(h)
	ackOpts := hl7v2.ACKOptions{ControlID: identity.ACKControlID(id), Now: now}
	if err := s.writeRaw(ctx, raw); err != nil {
		s.log.Warn("ingest write to Kafka, answering AR", "interface", r.in.Name, "transport", r.transport,
			"message_id", id, "bytes", len(r.payload), "err", err)
		s.metrics.messages.WithLabelValues(r.in.Name, resultError).Inc()
		ackOpts.Errors = []hl7v2.AckError{{Code: "207", Text: "message not stored; resend it"}}
		return inCharset(hl7v2.BuildACK(h, msg.Delimiters(), pick(enhanced, hl7v2.AckCR, hl7v2.AckAR), ackOpts), charset), resultError
	}
	if r.in.Rules != nil {
		// ack: validated. The rules are validate's own (one package), so
		// this answer and the message's fate downstream agree: validate
		// dead-letters it as invalid, with the same code and location.
		//
		// In enhanced mode the commit ACK says only that the message is
		// safely stored (CA), as HL7 defines it; what the application
		// thinks of it belongs to the application acknowledgement. In
		// original mode the one ACK answers both: AR for a message type or
		// version the interface does not take, AE for content the rules
		// refuse.
		if v := r.in.Rules.Check(msg); v != nil && !enhanced {
			s.log.Debug("ingest stored a message that fails the accept rules, answering AE/AR", "interface", r.in.Name,
				"transport", r.transport, "message_id", id, "code", v.Code, "location", v.Location)
			s.metrics.messages.WithLabelValues(r.in.Name, resultInvalid).Inc()
			ackOpts.Text = v.Text
			ackOpts.Errors = []hl7v2.AckError{{Code: v.HL7Code, Location: v.Location, Text: v.Text}}
			return inCharset(hl7v2.BuildACK(h, msg.Delimiters(), pick(v.Reject, hl7v2.AckAR, hl7v2.AckAE), ackOpts), charset), resultInvalid
		}
	}
	s.log.Debug("ingest accepted", "interface", r.in.Name, "transport", r.transport, "message_id", id,
		"control_id", h.ControlID, "type", h.MessageType+"^"+h.TriggerEvent, "bytes", len(r.payload))
	s.metrics.messages.WithLabelValues(r.in.Name, resultAccepted).Inc()
	return inCharset(hl7v2.BuildACK(h, msg.Delimiters(), pick(enhanced, hl7v2.AckCA, hl7v2.AckAA), ackOpts), charset), resultAccepted
}

// inCharset writes an ACK in the sender's character set: it echoes MSH-3
// to MSH-6 as decoded, which may hold letters outside ASCII. An ACK the set
// cannot hold (it cannot happen for text that came in that set) stays UTF-8.
func inCharset(ack []byte, charset string) []byte {
	cs, err := hl7v2.LookupCharset(charset)
	if err != nil || cs.IsUTF8() {
		return ack
	}
	if out, err := cs.Encode(ack); err == nil {
		return out
	}
	return ack
}

// rejectParse rejects input the parser (or the character set) refused,
// with the parser's code and location.
func (s *Stage) rejectParse(ctx context.Context, r receipt, id string, now time.Time, err error) ([]byte, string) {
	code, loc, text := hl7v2.CodeNoMSH, "", err.Error()
	var pe *hl7v2.ParseError
	if errors.As(err, &pe) {
		code, loc, text = pe.Code, pe.Location, pe.Msg
	}
	return s.reject(ctx, r, id, now, code, loc, text)
}

// refuse answers a writer the interface does not allow: AR/CR with the
// reason, nothing stored, the refusal audited and, once a minute for each
// writer and reason, logged.
func (s *Stage) refuse(r receipt, h hl7v2.Header, d hl7v2.Delimiters, ref *refusal) []byte {
	s.metrics.messages.WithLabelValues(r.in.Name, resultRefused).Inc()
	written := s.cfg.Audit.Refused(audit.Refusal{
		Type: audit.TypeWriterRefused, AgentType: r.writer.Kind, AgentWho: r.writer.Who, AgentNetwork: r.writer.Address,
		EntityType: audit.EntityInterface, EntityWhat: r.in.Name, EntityDetail: r.transport, Reason: ref.reason,
	})
	if written {
		s.log.Warn("ingest refused a writer; nothing stored", "interface", r.in.Name, "transport", r.transport,
			"writer", r.writer.String(), "reason", ref.reason)
	}
	return hl7v2.BuildACK(h, d, pick(hl7v2.AckModeEnhanced(h), hl7v2.AckCR, hl7v2.AckAR), hl7v2.ACKOptions{
		ControlID: identity.ACKControlID(identity.NewMessageID()), Now: s.cfg.Now().UTC(),
		Errors: []hl7v2.AckError{{Code: "207", Text: "not authorised: " + ref.reason}},
	})
}

// reject answers input that cannot be taken (AR/CR with one ERR built from
// whatever header PeekHeader recovers) and dead-letters it. The AR tells the
// sender the message was not accepted whether or not the dead letter was
// written; the dead letter is for the analyst who must fix the sender.
func (s *Stage) reject(ctx context.Context, r receipt, id string, now time.Time, code, loc, text string) ([]byte, string) {
	h, d := hl7v2.PeekHeader(r.payload)
	dl := &avro.DeadLetter{
		Stage:         topics.StageIngest,
		ErrorCode:     code,
		ErrorLocation: loc,
		ErrorText:     text,
		MessageID:     id,
		CorrelationID: id,
		Interface:     r.in.Name,
		OriginalValue: r.payload,
		At:            now,
	}
	result := resultRejected
	if err := s.writeDeadLetter(ctx, dl); err != nil {
		result = resultError
		s.log.Error("ingest dead-letter write, input rejected but not kept", "interface", r.in.Name, "transport", r.transport,
			"message_id", id, "code", code, "bytes", len(r.payload), "err", err)
	} else {
		s.log.Warn("ingest rejected input", "interface", r.in.Name, "transport", r.transport, "message_id", id,
			"code", code, "location", loc, "bytes", len(r.payload))
	}
	s.metrics.messages.WithLabelValues(r.in.Name, result).Inc()
	opts := hl7v2.ACKOptions{
		ControlID: identity.ACKControlID(id),
		Now:       now,
		Errors:    []hl7v2.AckError{{Code: errCode(code), Location: loc, Text: text}},
	}
	return hl7v2.BuildACK(h, d, pick(hl7v2.AckModeEnhanced(h), hl7v2.AckCR, hl7v2.AckAR), opts), result
}

// rejectTooLarge answers and dead-letters an oversize message, of which
// r.payload is the start.
func (s *Stage) rejectTooLarge(ctx context.Context, r receipt) ([]byte, string) {
	defer func() { s.metrics.ackSeconds.WithLabelValues(r.in.Name).Observe(time.Since(r.start).Seconds()) }()
	text := fmt.Sprintf("message exceeds the interface limit of %d bytes", r.in.MaxMessageSize)
	return s.reject(ctx, r, identity.NewMessageID(), s.cfg.Now().UTC(), CodeTooLarge, "", text)
}

// errCode maps a careflow error code to HL7 table 0357.
func errCode(code string) string {
	switch code {
	case hl7v2.CodeBadEncoding:
		return "102" // data type error: MSH-1/MSH-2 unusable
	case hl7v2.CodeTruncated, CodeNoControlID:
		return "101" // required field missing: the MSH stops before MSH-9, or MSH-10 is empty
	case hl7v2.CodeEmpty, hl7v2.CodeNoMSH, hl7v2.CodeBadSegment, hl7v2.CodeBatch:
		return "100" // segment sequence error
	}
	return "207" // application internal error (oversize and the rest)
}

func (s *Stage) writeRaw(ctx context.Context, raw *avro.RawMessage) error {
	rec, err := s.rawRecord(raw)
	if err != nil {
		return err
	}
	return s.produce(ctx, rec)
}

// rawRecord is raw as its careflow.raw record.
func (s *Stage) rawRecord(raw *avro.RawMessage) (*kgo.Record, error) {
	value, err := s.cfg.Serde.Encode(raw)
	if err != nil {
		return nil, fmt.Errorf("encode raw record: %w", err)
	}
	key := raw.PatientKey
	if key == "" {
		// Still spread keyless messages over partitions, and keep a
		// sender's resends together.
		key = raw.IdempotencyKey
	}
	if key == "" {
		key = raw.MessageID // neither patient nor control id: any partition
	}
	at := raw.ReceivedAt.Format(topics.TimeFormat)
	rec := &kgo.Record{
		Topic: topics.Raw,
		Key:   []byte(key),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderMessageID, Value: []byte(raw.MessageID)},
			{Key: topics.HeaderCorrelationID, Value: []byte(raw.CorrelationID)},
			{Key: topics.HeaderIdempotencyKey, Value: []byte(raw.IdempotencyKey)},
			{Key: topics.HeaderInterface, Value: []byte(raw.Interface)},
			{Key: topics.HeaderIngestTime, Value: []byte(at)},
			{Key: topics.StageTime(topics.StageIngest), Value: []byte(at)},
		},
	}
	return rec, nil
}

// writeDeadLetter keeps input ingest refused, as every stage's dead
// letters are kept (stages.DeadLetterEnvelope), keyed by its message id: it
// has no patient order to keep.
func (s *Stage) writeDeadLetter(ctx context.Context, dl *avro.DeadLetter) error {
	at := dl.At.Format(topics.TimeFormat)
	base := stages.Headers{
		{Key: topics.HeaderMessageID, Value: []byte(dl.MessageID)},
		{Key: topics.HeaderCorrelationID, Value: []byte(dl.CorrelationID)},
		{Key: topics.HeaderInterface, Value: []byte(dl.Interface)},
		{Key: topics.HeaderIngestTime, Value: []byte(at)},
		{Key: topics.StageTime(topics.StageIngest), Value: []byte(at)},
	}
	return s.produce(ctx, stages.ToRecord(stages.DeadLetterEnvelope(s.cfg.Serde, dl, []byte(dl.MessageID), base)))
}

// produce writes rec and waits for the broker's acknowledgement, bounded by
// ProduceTimeout and ctx. It does not use ProduceSync: an idempotent
// producer cannot fail a record already sent, so with the broker gone
// ProduceSync would hold the sender's ACK indefinitely. A record given up
// on here may still be written later; the sender's resend then carries the
// same idempotency key, which validate deduplicates.
func (s *Stage) produce(ctx context.Context, rec *kgo.Record) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	done := make(chan error, 1) // buffered: the promise never blocks
	s.cfg.Client.Produce(ctx, rec, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("produce to %s: %w", rec.Topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("produce to %s: no broker acknowledgement: %w", rec.Topic, ctx.Err())
	}
}

// mllpHandler adapts the MLLP server of interface in to accept. A writer
// outside the interface's addresses or certificates is answered AR for each
// message, and nothing of it is stored.
func (s *Stage) mllpHandler(in *Interface) mllp.Handler {
	return mllp.HandlerFunc(func(ctx context.Context, req mllp.Request) []byte {
		r := receipt{in: in, transport: avro.TransportMLLP, writer: peerOf(req.Remote.String(), req.TLS), payload: req.Payload, start: req.Received}
		ref := in.Writers.checkAddress(in.Name, r.writer.Address)
		if ref == nil {
			ref = in.Writers.checkCertificate(in.Name, req.TLS)
		}
		if ref != nil {
			h, d := hl7v2.PeekHeader(req.Payload)
			return s.refuse(r, h, d, ref)
		}
		if errors.Is(req.Err, mllp.ErrTooLarge) {
			ack, _ := s.rejectTooLarge(ctx, r)
			return ack
		}
		ack, _ := s.accept(ctx, r)
		return ack
	})
}

func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}
