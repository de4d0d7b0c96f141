// Package load is careflow's open-loop MLLP load generator. It sends HL7
// messages on a fixed arrival schedule (message i is due at start + i/rate)
// over C connections, one message in flight per connection as HL7 requires,
// and measures each message's latency from the time it was *due*, not the
// time it was sent. When the receiver slows down, messages queue behind
// busy connections and that wait counts, so coordinated omission is not
// hidden: a stalled engine shows up in the quantiles instead of silently
// lowering the offered rate.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
)

// Defaults of Config.
const (
	DefaultConnections = 1
	DefaultACKTimeout  = 5 * time.Second
)

// Config says what to send, where and how fast.
type Config struct {
	// Addr is the MLLP host:port of the receiver.
	Addr string
	// Rate is the offered load in messages per second over all connections.
	// Zero or less is a closed loop: each connection sends its next message
	// as soon as the previous one is acknowledged (to find the peak rate).
	Rate float64
	// Duration bounds the run: no message is due after start + Duration.
	// Either Duration or Count must be set; with both, the first reached
	// ends the run.
	Duration time.Duration
	// Count, when positive, is the exact number of messages sent.
	Count int
	// Connections is the number of MLLP connections. Default: 1.
	Connections int
	// ACKTimeout bounds waiting for one ACK; a message whose ACK does not
	// come in time counts as a timeout and its connection is redialled.
	// Default: 5s.
	ACKTimeout time.Duration
	// Corpus holds the messages, sent round robin. Each copy gets a unique
	// MSH-10 (ControlPrefix followed by the sequence number), so receivers
	// that deduplicate on MSH-10 accept every one.
	Corpus [][]byte
	// ControlPrefix starts every MSH-10. Default: "L" and the start time in
	// base 36, so two runs against one engine do not collide.
	ControlPrefix string
	// Message, when set, replaces Corpus: it returns message seq (from 0).
	Message func(seq int) []byte
}

// Result is what a run measured. Latencies run from each message's due
// time to its ACK having been read.
type Result struct {
	Sent     int // messages written (including those that then failed)
	AA       int // application accept (and CA, commit accept)
	AE       int // application error (and CE)
	AR       int // application reject (and CR)
	Timeouts int // no ACK within ACKTimeout
	Errors   int // connection failures and unreadable ACKs
	// Start is the schedule's origin: message seq is due at
	// Start + seq × Interval (Interval is zero in a closed loop).
	Start    time.Time
	Interval time.Duration
	Elapsed  time.Duration // from Start to the last ACK
	Rate     float64       // acknowledged (AA+AE+AR) messages per second over Elapsed
	P50      time.Duration
	P95      time.Duration
	P99      time.Duration
	Max      time.Duration
}

// Acked is the number of messages answered with any ACK code.
func (r Result) Acked() int { return r.AA + r.AE + r.AR }

// String is the report printed by `careflow load`.
func (r Result) String() string {
	return fmt.Sprintf("sent %d in %.2fs: %.0f msgs/s acknowledged\nAA %d  AE %d  AR %d  timeouts %d  errors %d\nlatency from scheduled send to ACK: p50 %s  p95 %s  p99 %s  max %s\n",
		r.Sent, r.Elapsed.Seconds(), r.Rate, r.AA, r.AE, r.AR, r.Timeouts, r.Errors,
		fmtDur(r.P50), fmtDur(r.P95), fmtDur(r.P99), fmtDur(r.Max))
}

func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}

// worker is one connection's tally; merged at the end so the hot path
// shares nothing but the sequence counter.
type worker struct {
	res  Result
	lats []time.Duration
	last time.Time // when this worker read its last ACK
}

// Run sends the load and returns what it measured. It returns an error only
// for a configuration mistake or when ctx ends; failed messages are counted
// in the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Addr == "" {
		return Result{}, errors.New("load: no address to send to")
	}
	if cfg.Duration <= 0 && cfg.Count <= 0 {
		return Result{}, errors.New("load: give a duration or a count")
	}
	if cfg.Message == nil && len(cfg.Corpus) == 0 {
		return Result{}, errors.New("load: the corpus holds no messages")
	}
	if cfg.Connections <= 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.ACKTimeout <= 0 {
		cfg.ACKTimeout = DefaultACKTimeout
	}
	if cfg.ControlPrefix == "" {
		cfg.ControlPrefix = "L" + strconv.FormatInt(time.Now().UnixNano()/1e6, 36) + "-"
	}
	next := cfg.Message
	if next == nil {
		next = func(seq int) []byte {
			return WithControlID(cfg.Corpus[seq%len(cfg.Corpus)], cfg.ControlPrefix+strconv.Itoa(seq))
		}
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	start := time.Now()
	end := time.Time{}
	if cfg.Duration > 0 {
		end = start.Add(cfg.Duration)
	}
	var seq atomic.Int64
	workers := make([]*worker, cfg.Connections)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{}
		workers[i] = w
		wg.Go(func() {
			c := &mllp.Client{Addr: cfg.Addr, ACKTimeout: cfg.ACKTimeout}
			defer c.Close()
			for ctx.Err() == nil {
				n := int(seq.Add(1) - 1)
				if cfg.Count > 0 && n >= cfg.Count {
					return
				}
				due := time.Now()
				if interval > 0 {
					due = start.Add(time.Duration(n) * interval)
				}
				if !end.IsZero() && !due.Before(end) {
					return
				}
				if wait := time.Until(due); wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-t.C:
					}
				}
				w.send(ctx, c, next(n), due)
			}
		})
	}
	wg.Wait()
	res := merge(workers, start, interval)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("load: stopped after %d messages: %w", res.Sent, err)
	}
	return res, nil
}

func (w *worker) send(ctx context.Context, c *mllp.Client, msg []byte, due time.Time) {
	w.res.Sent++
	reply, err := c.Send(ctx, msg)
	done := time.Now()
	if err != nil {
		if errors.Is(err, mllp.ErrTimeout) {
			w.res.Timeouts++
		} else if ctx.Err() == nil {
			w.res.Errors++
		} else {
			w.res.Sent-- // interrupted by the caller, not the receiver's fault
		}
		return
	}
	code, ok := ackCode(reply)
	switch {
	case !ok:
		w.res.Errors++
		return
	case code == hl7v2.AckAA || code == hl7v2.AckCA:
		w.res.AA++
	case code == hl7v2.AckAE || code == hl7v2.AckCE:
		w.res.AE++
	default:
		w.res.AR++
	}
	w.lats = append(w.lats, done.Sub(due))
	w.last = done
}

// ackCode reads MSA-1 of an acknowledgement.
func ackCode(reply []byte) (hl7v2.AckCode, bool) {
	ack, err := hl7v2.ParseACK(reply)
	if err != nil {
		return "", false
	}
	return ack.Code, true
}

func merge(workers []*worker, start time.Time, interval time.Duration) Result {
	res := Result{Start: start, Interval: interval}
	var lats []time.Duration
	last := start
	for _, w := range workers {
		res.Sent += w.res.Sent
		res.AA += w.res.AA
		res.AE += w.res.AE
		res.AR += w.res.AR
		res.Timeouts += w.res.Timeouts
		res.Errors += w.res.Errors
		if w.last.After(last) {
			last = w.last
		}
		lats = append(lats, w.lats...)
	}
	res.Elapsed = last.Sub(start)
	if res.Elapsed > 0 {
		res.Rate = float64(res.Acked()) / res.Elapsed.Seconds()
	}
	slices.Sort(lats)
	res.P50, res.P95, res.P99 = Quantile(lats, 0.50), Quantile(lats, 0.95), Quantile(lats, 0.99)
	if len(lats) > 0 {
		res.Max = lats[len(lats)-1]
	}
	return res
}

// Quantile returns the q-quantile (0 < q ≤ 1) of sorted by the
// nearest-rank method: the smallest value with at least q of the values at
// or below it. Zero for no values.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*q+0.999999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

// WithControlID returns a copy of msg whose MSH-10 is id. A message
// without an MSH segment is returned unchanged.
func WithControlID(msg []byte, id string) []byte {
	if len(msg) < 8 || !bytes.HasPrefix(msg, []byte("MSH")) {
		return msg
	}
	sep := msg[3]
	// MSH-1 is the separator itself, so MSH-10 follows the ninth separator.
	start, n := -1, 0
	for i := 3; i < len(msg) && msg[i] != '\r' && msg[i] != '\n'; i++ {
		if msg[i] == sep {
			n++
			if n == 9 {
				start = i + 1
				break
			}
		}
	}
	if start < 0 {
		return msg
	}
	end := start
	for end < len(msg) && msg[end] != sep && msg[end] != '\r' && msg[end] != '\n' {
		end++
	}
	out := make([]byte, 0, len(msg)+len(id))
	out = append(out, msg[:start]...)
	out = append(out, id...)
	return append(out, msg[end:]...)
}
