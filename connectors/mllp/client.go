package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Client defaults.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultACKTimeout  = 30 * time.Second
)

// Client sends frames to one MLLP peer over one connection, one message at
// a time (concurrent Sends queue). A send is complete only once the reply
// frame has been read. Zero values mean the documented defaults.
type Client struct {
	Addr string // host:port
	// DialTimeout bounds connecting. Default: 5s.
	DialTimeout time.Duration
	// ACKTimeout bounds writing the frame and reading the reply. Default: 30s.
	ACKTimeout time.Duration
	// TLSConfig, when set, makes the client dial TLS.
	TLSConfig *tls.Config
	// MaxMessageSize is the largest reply accepted. Default: 4 MiB.
	MaxMessageSize int

	mu   sync.Mutex
	conn net.Conn
	r    *Reader
	read int64 // bytes read from conn so far
}

// Send writes payload as one frame and returns the payload of the reply
// frame. It dials lazily and keeps the connection for the next Send. On any
// error the connection is closed (the next Send redials) and the error is
// one of: matching ErrTimeout when no reply came within ACKTimeout; ctx's
// error when ctx ended first; a *net.OpError for connection failures
// (including the peer closing before replying); a *FrameError when the
// reply is not a frame or is too large.
//
// A kept-alive connection the peer has since closed (its idle timeout, a
// restart) is not a failure of this message: when a reused connection
// turns out closed (EOF, reset, broken pipe) before any byte of a reply
// has arrived, Send redials once and sends again. It never does so after a
// timeout, nor on a connection it has just dialled, so one Send writes the
// frame at most twice and, with a fresh connection, once.
//
// Whether the peer processed a message whose reply never came is unknown;
// the caller decides whether to resend (HL7 receivers dedupe on MSH-10).
func (c *Client) Send(ctx context.Context, payload []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reused := c.conn != nil
	if !reused {
		if err := c.dial(ctx); err != nil {
			return nil, err
		}
	}
	reply, stale, err := c.exchange(ctx, payload)
	if err != nil && stale && reused && ctx.Err() == nil {
		c.closeLocked()
		if err := c.dial(ctx); err != nil {
			return nil, err
		}
		reply, _, err = c.exchange(ctx, payload)
	}
	if err != nil {
		c.closeLocked()
		return nil, err
	}
	return reply, nil
}

func (c *Client) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: orDefault(c.DialTimeout, DefaultDialTimeout)}
	var (
		nc  net.Conn
		err error
	)
	if c.TLSConfig != nil {
		td := &tls.Dialer{NetDialer: d, Config: c.TLSConfig}
		nc, err = td.DialContext(ctx, "tcp", c.Addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return err
	}
	c.conn = nc
	c.read = 0
	c.r = NewReader(countingReader{r: nc, n: &c.read}, orDefault(c.MaxMessageSize, DefaultMaxMessageSize))
	return nil
}

// exchange writes payload and reads the reply on the current connection.
// stale reports that the failure was the peer having closed the connection
// before sending any byte of a reply: the mark of a kept-alive connection
// that had gone away before this message.
func (c *Client) exchange(ctx context.Context, payload []byte) (reply []byte, stale bool, err error) {
	timeout := orDefault(c.ACKTimeout, DefaultACKTimeout)
	_ = c.conn.SetDeadline(time.Now().Add(timeout))
	// ctx ending must interrupt a blocked read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	before := c.read
	if err := WriteFrame(c.conn, payload); err != nil {
		return nil, peerClosed(err), c.classify(ctx, "write", err, timeout)
	}
	reply, err = c.r.ReadFrame()
	if err != nil {
		return nil, c.read == before && peerClosed(err), c.classify(ctx, "read", err, timeout)
	}
	return reply, false, nil
}

// peerClosed reports whether err is the peer having closed or reset the
// connection (and not, in particular, a timeout).
func peerClosed(err error) bool {
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// countingReader counts the bytes read from the connection, so that Send
// can tell "closed before replying" from "closed mid-reply".
type countingReader struct {
	r io.Reader
	n *int64
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	*cr.n += int64(n)
	return n, err
}

// classify turns an I/O or framing error into the documented kinds.
func (c *Client) classify(ctx context.Context, op string, err error, timeout time.Duration) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("mllp send to %s: %w", c.Addr, ctxErr)
	}
	var ne net.Error
	if errors.Is(err, ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &FrameError{Code: ErrTimeout.Code, Msg: fmt.Sprintf("no reply from %s within %s", c.Addr, timeout), err: err}
	}
	// The peer closing (cleanly or mid-reply) is a connection failure, not
	// a framing one: report it as net errors are reported.
	if err == io.EOF || errors.Is(err, ErrTruncated) {
		return &net.OpError{Op: op, Net: "tcp", Source: c.conn.LocalAddr(), Addr: c.conn.RemoteAddr(), Err: fmt.Errorf("connection closed by peer before reply: %w", io.ErrUnexpectedEOF)}
	}
	var fe *FrameError
	if errors.As(err, &fe) {
		return &FrameError{Code: fe.Code, Msg: fmt.Sprintf("reply from %s: %s", c.Addr, fe.Msg), err: fe.err}
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.conn.LocalAddr(), Addr: c.conn.RemoteAddr(), Err: err}
}

// Close closes the connection, if any. The Client remains usable: the
// next Send redials.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

func (c *Client) closeLocked() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.r = nil, nil
	return err
}
