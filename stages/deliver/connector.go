package deliver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"careflow/connectors/hl7v2"
	"careflow/connectors/httpx"
	"careflow/connectors/mllp"
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
	Text       string // MSA-3 / ERR text or HTTP body excerpt (no patient data is added by careflow)
	Latency    time.Duration
}

// Connector sends one rendered message. It returns an error only for a
// transient failure (timeout, connection refused, HL7 AR, HTTP 5xx or
// 429), which the circuit breaker counts.
type Connector interface {
	Send(ctx context.Context, payload []byte) (Result, error)
}

// TransientError is a failure worth retrying, with a code for outcomes.
type TransientError struct {
	Code string
	Err  error
}

func (e *TransientError) Error() string { return e.Code + ": " + e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// MLLP sends HL7 v2 over MLLP and reads the ACK: AA/CA delivered, AE/CE
// rejected, AR/CR (the receiver's "try again") transient, as are timeouts,
// connection errors and replies that are not an ACK.
type MLLP struct{ Client *mllp.Client }

// Send implements Connector.
func (c MLLP) Send(ctx context.Context, payload []byte) (Result, error) {
	start := time.Now()
	reply, err := c.Client.Send(ctx, payload)
	var op *net.OpError
	if errors.As(err, &op) && ctx.Err() == nil {
		// A kept-alive connection the receiver has since closed (idle
		// timeout, restart) fails at once: try once more on a fresh one
		// before counting a failure against the destination.
		reply, err = c.Client.Send(ctx, payload)
	}
	lat := time.Since(start)
	if err != nil {
		code := "mllp.connection"
		if errors.Is(err, mllp.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			code = "mllp.ack_timeout"
		}
		var fe *mllp.FrameError
		if errors.As(err, &fe) {
			code = "mllp.bad_reply"
		}
		return Result{Latency: lat}, &TransientError{Code: code, Err: err}
	}
	ack, err := hl7v2.ParseACK(reply)
	if err != nil {
		// Whatever answered is not speaking HL7 on this connection; do not
		// reuse it.
		_ = c.Client.Close()
		return Result{Latency: lat}, &TransientError{Code: "ack.unreadable", Err: fmt.Errorf("reply is not an HL7 ACK: %w", err)}
	}
	if h, _ := hl7v2.PeekHeader(payload); ack.ControlID != h.ControlID {
		// A reply to some other message (a receiver that answered twice,
		// or a stale reply on a reused connection): never take it as this
		// message's ACK. Drop the connection and try again.
		_ = c.Client.Close()
		return Result{Latency: lat}, &TransientError{Code: "ack.control_id_mismatch",
			Err: fmt.Errorf("ACK is for control id %q, sent %q", ack.ControlID, h.ControlID)}
	}
	r := Result{AckCode: string(ack.Code), Text: ack.Text, Latency: lat}
	if len(ack.Errors) > 0 {
		r.Location = ack.Errors[0].Location
		if r.Text == "" {
			r.Text = ack.Errors[0].Text
		}
	}
	switch ack.Code {
	case "AA", "CA":
		r.Delivered = true
		return r, nil
	case "AE", "CE":
		r.Rejected = true
		r.Code = "ack." + string(ack.Code)
		return r, nil
	default: // AR, CR: the receiver could not process it now
		return r, &TransientError{Code: "ack." + string(ack.Code), Err: fmt.Errorf("receiver answered %s: %s", ack.Code, r.Text)}
	}
}

// HTTP posts the rendered document: 2xx delivered; 408 and 429 and 5xx
// transient; other 4xx rejected.
type HTTP struct {
	Client      *httpx.Client
	URL         string
	ContentType string
}

// Send implements Connector.
func (c HTTP) Send(ctx context.Context, payload []byte) (Result, error) {
	resp, err := c.Client.Post(ctx, c.URL, c.ContentType, payload, nil)
	if err != nil {
		code := "http.connection"
		if errors.Is(err, context.DeadlineExceeded) {
			code = "http.timeout"
		}
		return Result{Latency: resp.Latency}, &TransientError{Code: code, Err: err}
	}
	r := Result{HTTPStatus: resp.Status, Latency: resp.Latency, Text: excerpt(resp.Body)}
	switch {
	case resp.Status >= 200 && resp.Status < 300:
		r.Delivered = true
		return r, nil
	case resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusRequestTimeout || resp.Status >= 500:
		return r, &TransientError{Code: fmt.Sprintf("http.%d", resp.Status), Err: fmt.Errorf("destination answered HTTP %d", resp.Status)}
	default:
		r.Rejected = true
		r.Code = fmt.Sprintf("http.%d", resp.Status)
		return r, nil
	}
}

func excerpt(b []byte) string {
	const max = 512
	if len(b) > max {
		b = b[:max]
	}
	return string(b)
}
