package deliver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/connectors/mllp"
)

// Result is what a destination said about one send. Transport success is
// not business acceptance: an HL7 AE or an HTTP 4xx arrives over a healthy
// connection and is a Rejected result, not an error.
type Result struct {
	Delivered  bool
	Rejected   bool
	AckCode    string // MLLP: MSA-1 as received
	HTTPStatus int    // HTTP: the status
	Code       string // error code for a rejection, e.g. "ack.AE", "http.422"
	Location   string // ERR location from a rejecting ACK
	// Text is the destination's own words: MSA-3 and the ERR segments'
	// text, or an HTTP body excerpt. It often names the patient, so it
	// flows only to the dead letter's ErrorDetail (stages.WithDetail):
	// never to an outcome, an error message or a log line.
	Text    string
	Latency time.Duration
	// RemoteIDs are what the destination named what it stored, when it
	// does (a FHIR server's entry.response.location values): recorded on
	// the delivered outcome.
	RemoteIDs []string
}

// Connector sends one rendered message. It returns an error only for a
// transient failure (timeout, connection refused, HL7 AR, HTTP 5xx or
// 429), which the circuit breaker counts.
type Connector interface {
	// Send delivers payload, a rendered message whose control id (HL7
	// MSH-10) is controlID.
	Send(ctx context.Context, controlID string, payload []byte) (Result, error)
	// Close releases the connection, when the stage stops.
	Close(ctx context.Context) error
}

// TransientError is a failure worth retrying, with a code for outcomes.
// Its message is careflow's own (it is logged and recorded): what the
// destination said is in the Result's Text.
type TransientError struct {
	Code string
	Err  error
	// After is how long the destination asked to be left alone (HTTP
	// Retry-After); 0 when it did not say. The stage's retry waits at
	// least this long.
	After time.Duration
}

// Error is the cause, which names its own code when it has one
// (mllp.timeout: no reply ...), else the code and the cause.
func (e *TransientError) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, e.Code) {
		return msg
	}
	return e.Code + ": " + msg
}
func (e *TransientError) Unwrap() error { return e.Err }

// RetryAfter implements stages.RetryAfter: the destination's Retry-After.
func (e *TransientError) RetryAfter() time.Duration { return e.After }

// Error codes deliver records on outcomes and dead letters, declared once
// here; an ACK's and an HTTP status's codes are families (CodeACK,
// CodeHTTP).
const (
	// CodeRender: the event could not be written in the destination's
	// format (a render error without an HL7 location of its own).
	CodeRender = "deliver.render"
	// CodeBreakerOpen: the destination's breaker is open; the input
	// waits, in order.
	CodeBreakerOpen = "deliver.breaker_open"
	// CodeTransient: a transient failure no connector named.
	CodeTransient = "deliver.transient"
	// CodeACKUnreadable: the reply is an MLLP frame but not an HL7 ACK.
	CodeACKUnreadable = "ack.unreadable"
	// CodeACKMismatch: the ACK's MSA-2 is another message's control id.
	CodeACKMismatch = "ack.control_id_mismatch"
	// CodeHTTPConnection and CodeHTTPTimeout: an HTTP destination that
	// could not be reached, or did not answer in time.
	CodeHTTPConnection = "http.connection"
	CodeHTTPTimeout    = "http.timeout"
	// CodeMLLPTimeout: no reply within the ACK timeout (or the send's
	// context ran out). The message may or may not have been processed.
	CodeMLLPTimeout = "mllp.timeout"
	// CodeMLLPConnection: dialling failed, or the receiver closed the
	// connection before replying.
	CodeMLLPConnection = "mllp.connection"
	// CodeMLLPBadReply: what came back is not an MLLP frame (or is too
	// large to be an ACK).
	CodeMLLPBadReply = "mllp.bad_reply"
)

// CodeACK is the code of an ACK that did not accept: ack.AE, ack.AR, ...
func CodeACK(code hl7v2.AckCode) string { return "ack." + string(code) }

// CodeHTTP is the code of an HTTP answer that did not accept: http.422, ...
func CodeHTTP(status int) string { return "http." + strconv.Itoa(status) }

// mllpCode names a failed mllp.Client Send. The timeout test comes first:
// a timeout is also a *mllp.FrameError.
func mllpCode(err error) string {
	var fe *mllp.FrameError
	switch {
	case errors.Is(err, mllp.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return CodeMLLPTimeout
	case errors.As(err, &fe):
		return CodeMLLPBadReply
	}
	return CodeMLLPConnection
}

// MLLP sends HL7 v2 over MLLP and reads the ACK: AA/CA delivered, AE/CE
// rejected, AR/CR (the receiver's "try again") transient, as are timeouts,
// connection errors and replies that are not an ACK. Each Send writes the
// message once (the client itself redials a kept-alive connection the
// receiver had closed), so every timeout is one attempt for the breaker.
type MLLP struct{ Client *mllp.Client }

// Close implements Connector: it closes the connection to the receiver.
func (c MLLP) Close(context.Context) error { return c.Client.Close() }

// Send implements Connector.
func (c MLLP) Send(ctx context.Context, controlID string, payload []byte) (Result, error) {
	start := time.Now()
	reply, err := c.Client.Send(ctx, payload)
	lat := time.Since(start)
	if err != nil {
		return Result{Latency: lat}, &TransientError{Code: mllpCode(err), Err: err}
	}
	ack, err := hl7v2.ParseACK(reply)
	if err != nil {
		// Whatever answered is not speaking HL7 on this connection; do not
		// reuse it.
		_ = c.Client.Close()
		return Result{Latency: lat}, &TransientError{Code: CodeACKUnreadable, Err: fmt.Errorf("reply is not an HL7 ACK: %w", err)}
	}
	if ack.ControlID != controlID {
		// A reply to some other message (a receiver that answered twice,
		// or a stale reply on a reused connection): never take it as this
		// message's ACK. Drop the connection and try again.
		_ = c.Client.Close()
		return Result{Latency: lat, Text: "MSA-2: " + ack.ControlID}, &TransientError{Code: CodeACKMismatch,
			Err: fmt.Errorf("ACK is for another control id than the %s sent", controlID)}
	}
	r := Result{AckCode: string(ack.Code), Text: ackText(ack), Latency: lat}
	if len(ack.Errors) > 0 {
		r.Location = hl7Location(ack.Errors[0].Location)
	}
	switch ack.Code {
	case "AA", "CA":
		r.Delivered = true
		return r, nil
	case "AE", "CE":
		r.Rejected = true
		r.Code = CodeACK(ack.Code)
		return r, nil
	default: // AR, CR: the receiver could not process it now
		return r, &TransientError{Code: CodeACK(ack.Code), Err: fmt.Errorf("receiver answered %s", ack.Code)}
	}
}

// locationShape is an HL7 location as hl7v2 formats one: "PID-3[2].1".
var locationShape = regexp.MustCompile(`^[A-Z][A-Z0-9]{2}(\[[0-9]{1,4}\])?(-[0-9]{1,4}(\[[0-9]{1,4}\])?(\.[0-9]{1,4}){0,2})?$`)

// hl7Location keeps an ERR location only when it is one: whatever else a
// receiver wrote in ERR-2 is its free text, which must not reach outcomes
// and headers (it stays in the Result's Text).
func hl7Location(loc string) string {
	if locationShape.MatchString(loc) {
		return loc
	}
	return ""
}

// ackText gathers what an ACK says in the receiver's words: MSA-3, then
// each ERR's location, code and text.
func ackText(ack hl7v2.ACK) string {
	var b strings.Builder
	if ack.Text != "" {
		b.WriteString("MSA-3: ")
		b.WriteString(ack.Text)
	}
	for _, e := range ack.Errors {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString("ERR")
		for _, part := range []string{e.Location, e.Code, e.Severity} {
			if part != "" {
				b.WriteString(" ")
				b.WriteString(part)
			}
		}
		if e.Text != "" {
			b.WriteString(": ")
			b.WriteString(e.Text)
		}
		if b.Len() > avro.MaxErrorDetail {
			break
		}
	}
	return b.String()
}

// HTTP posts the rendered document: 2xx delivered; 408 and 429 and 5xx
// transient; other 4xx rejected.
type HTTP struct {
	Client      *httpx.Client
	URL         string
	ContentType string
}

// Close implements Connector: it closes idle keep-alive connections.
func (c HTTP) Close(context.Context) error {
	c.Client.CloseIdleConnections()
	return nil
}

// Send implements Connector.
func (c HTTP) Send(ctx context.Context, _ string, payload []byte) (Result, error) {
	resp, err := c.Client.Post(ctx, c.URL, c.ContentType, payload, nil)
	if err != nil {
		code := CodeHTTPConnection
		if errors.Is(err, context.DeadlineExceeded) {
			code = CodeHTTPTimeout
		}
		return Result{Latency: resp.Latency}, &TransientError{Code: code, Err: err}
	}
	r := Result{HTTPStatus: resp.Status, Latency: resp.Latency, Text: excerpt(resp.Body)}
	switch {
	case resp.Status >= 200 && resp.Status < 300:
		r.Delivered = true
		return r, nil
	case resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusRequestTimeout || resp.Status >= 500:
		return r, &TransientError{Code: CodeHTTP(resp.Status), Err: fmt.Errorf("destination answered HTTP %d", resp.Status)}
	default:
		r.Rejected = true
		r.Code = CodeHTTP(resp.Status)
		return r, nil
	}
}

// excerpt keeps as much of a response body as a dead letter's ErrorDetail
// holds (which cuts it on a character boundary).
func excerpt(b []byte) string {
	if len(b) > avro.MaxErrorDetail {
		b = b[:avro.MaxErrorDetail]
	}
	return string(b)
}
