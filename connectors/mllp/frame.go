// Package mllp implements the HL7 Minimal Lower Layer Protocol: framing
// (<SB> payload <EB><CR>), a server that hands each frame to a Handler and
// writes its reply, and a client for outbound delivery. It knows nothing of
// HL7 itself beyond the frame; parsing and ACKs belong to connectors/hl7v2.
package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// Frame bytes, as the HL7 v2 MLLP release 2 spec names them.
const (
	StartBlock     byte = 0x0b
	EndBlock       byte = 0x1c
	CarriageReturn byte = 0x0d
)

// DefaultMaxMessageSize is the frame size limit when none is given: large
// enough for a lab report carrying a 1 MB OBX-5 (base64 PDFs are common).
const DefaultMaxMessageSize = 4 << 20

// PrefixSize is how much of an oversize frame ReadFrame keeps, so a server
// can still answer it (MSH-10 is near the start) and dead-letter evidence.
const PrefixSize = 64 << 10

// FrameError is a framing failure a server answers or logs. Code is stable
// and machine-readable; Msg says what happened without quoting the payload.
type FrameError struct {
	Code string // "mllp.too_large", "mllp.no_start_block", "mllp.truncated", "mllp.timeout"
	Msg  string
	err  error // underlying cause, if any (a deadline, an EOF)
}

func (e *FrameError) Error() string {
	if e.Msg == "" {
		return e.Code
	}
	return e.Code + ": " + e.Msg
}

// Unwrap returns the underlying I/O error, if any.
func (e *FrameError) Unwrap() error { return e.err }

// Is reports whether target is a FrameError with the same Code, so that
// errors.Is(err, ErrTooLarge) works whatever the message.
func (e *FrameError) Is(target error) bool {
	t, ok := target.(*FrameError)
	return ok && t.Code == e.Code
}

// Sentinels to test returned errors against with errors.Is.
var (
	ErrTooLarge     = &FrameError{Code: "mllp.too_large"}
	ErrNoStartBlock = &FrameError{Code: "mllp.no_start_block"}
	ErrTruncated    = &FrameError{Code: "mllp.truncated"}
	ErrTimeout      = &FrameError{Code: "mllp.timeout"}
)

// Reader reads MLLP frames from a byte stream.
//
// Tolerances, because real senders differ from the spec:
//   - whitespace (space, tab, CR, LF, FF) between frames is skipped;
//   - an EndBlock not followed by CarriageReturn ends the frame; a CR that
//     follows is consumed if it has already arrived, else skipped as
//     whitespace before the next frame. Waiting for a CR that some senders
//     never send would deadlock them, since they wait for our reply.
//
// Bytes other than whitespace before a StartBlock are discarded (as far as
// already received) and reported as ErrNoStartBlock; the next ReadFrame
// carries on from the following StartBlock.
type Reader struct {
	br  *bufio.Reader
	max int
}

// NewReader returns a Reader on r that refuses frames over maxSize bytes
// (DefaultMaxMessageSize when maxSize <= 0).
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), max: maxSize}
}

// ReadFrame returns the next frame's payload without framing bytes. The
// slice belongs to the caller.
//
// It returns io.EOF when the stream ends cleanly between frames. A frame
// over the size limit is read and discarded up to its EndBlock, so the
// stream can go on, and ReadFrame returns its first min(PrefixSize, maxSize)
// bytes with an error matching ErrTooLarge. The stream ending inside a
// frame gives ErrTruncated; a read deadline gives ErrTimeout.
func (r *Reader) ReadFrame() ([]byte, error) {
	if err := r.skipToStart(); err != nil {
		return nil, err
	}
	prefix := min(PrefixSize, r.max)
	var payload []byte
	total := 0
	over := false
	for {
		chunk, err := r.br.ReadSlice(EndBlock)
		end := err == nil
		if end {
			chunk = chunk[:len(chunk)-1]
		}
		total += len(chunk)
		// Keep appending until the limit is crossed, then only the prefix:
		// memory stays bounded by the limit plus one buffer.
		if !over || len(payload) < prefix {
			payload = append(payload, chunk...)
		}
		if total > r.max {
			over = true
		}
		if over && len(payload) > prefix {
			payload = payload[:prefix]
		}
		if end {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return nil, r.ioError(err, total)
	}
	if r.br.Buffered() > 0 {
		if b, _ := r.br.Peek(1); b[0] == CarriageReturn {
			_, _ = r.br.Discard(1)
		}
	}
	if over {
		return payload, &FrameError{Code: ErrTooLarge.Code, Msg: fmt.Sprintf("frame of %d bytes exceeds the limit of %d", total, r.max)}
	}
	if payload == nil {
		payload = []byte{}
	}
	return payload, nil
}

// waitFrame skips whitespace and blocks until a byte that may start a frame
// has arrived, without consuming it. The server uses it to apply the idle
// timeout between frames and the read timeout within one.
func (r *Reader) waitFrame() error {
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return r.ioError(err, 0)
		}
		if !isSpace(b[0]) {
			return nil
		}
		_, _ = r.br.Discard(1)
	}
}

// skipToStart consumes whitespace and the StartBlock.
func (r *Reader) skipToStart() error {
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return r.ioError(err, 0)
		}
		if b == StartBlock {
			return nil
		}
		if isSpace(b) {
			continue
		}
		// Garbage: drop what has arrived up to the next StartBlock, without
		// blocking for more, so a sender speaking something else gets an
		// answer (or a close) rather than a hang.
		n := 1
		if buf, _ := r.br.Peek(r.br.Buffered()); len(buf) > 0 {
			i := bytes.IndexByte(buf, StartBlock)
			if i < 0 {
				i = len(buf)
			}
			_, _ = r.br.Discard(i)
			n += i
		}
		return &FrameError{Code: ErrNoStartBlock.Code, Msg: fmt.Sprintf("%d bytes before the start block discarded", n)}
	}
}

// ioError classifies a read error met after read bytes of a frame.
func (r *Reader) ioError(err error, read int) error {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &FrameError{Code: ErrTimeout.Code, Msg: fmt.Sprintf("deadline passed after %d bytes of the frame", read), err: err}
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return &FrameError{Code: ErrTruncated.Code, Msg: fmt.Sprintf("stream ended after %d bytes, before the end block", read), err: io.ErrUnexpectedEOF}
	}
	return err
}

func isSpace(b byte) bool {
	switch b {
	case ' ', '\t', '\r', '\n', '\f':
		return true
	}
	return false
}

// AppendFrame appends payload, framed, to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = append(dst, StartBlock)
	dst = append(dst, payload...)
	return append(dst, EndBlock, CarriageReturn)
}

var (
	startBytes = []byte{StartBlock}
	endBytes   = []byte{EndBlock, CarriageReturn}
)

// WriteFrame writes payload, framed, to w. On a net.Conn it is one writev,
// so a frame does not cost a copy of a large payload.
func WriteFrame(w io.Writer, payload []byte) error {
	bufs := net.Buffers{startBytes, payload, endBytes}
	_, err := bufs.WriteTo(w)
	return err
}
