// This file is the simulated laboratory system: it acknowledges everything
// careflow delivers to it and, for each new order, answers through
// careflow's lab-results interface a moment later as a laboratory
// information system would: an ORR^O02 accepting the order (or, now and
// then, refusing it), a preliminary result, the final one and, sometimes,
// a correction. Each message moves the order's lifecycle (docs/workflows.md).

package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
)

// lab is the laboratory: an mllp.Handler for orders and a sender of
// results. Construct with newLab; run sendResults in one goroutine.
type lab struct {
	stats *stats
	log   *slog.Logger
	delay time.Duration // order received → result sent
	run   string
	jobs  chan resultJob
	early chan []byte // orders to result before careflow has them
	mu    sync.Mutex
	seen  map[string]bool // placer order numbers already resulted, so a redelivery gets no second result
	// resultedEarly are the orders resulted before careflow delivered them.
	resultedEarly map[string]bool
	seq           int
	rngMu         sync.Mutex
	rng           *rand.Rand
	client        *mllp.Client
	// plan says what the lab sends back for one order; the default draws
	// one of the plans below at random.
	plan func() []step
}

// step is one message the lab sends about an order: an ORR with ORC-1
// control, or an ORU with OBR-25 status.
type step struct{ orr, control, status string }

var (
	planRefused   = []step{{orr: "ORR", control: "UA"}}
	planFinal     = []step{{orr: "ORR", control: "OK"}, {status: "P"}, {status: "F"}}
	planCorrected = []step{{orr: "ORR", control: "OK"}, {status: "P"}, {status: "F"}, {status: "C"}}
)

// randomPlan refuses 6% of orders, corrects 10% of the results, and
// results the rest preliminary then final.
func (l *lab) randomPlan() []step {
	l.rngMu.Lock()
	u := l.rng.Float64()
	l.rngMu.Unlock()
	switch {
	case u < 0.06:
		return planRefused
	case u < 0.16:
		return planCorrected
	}
	return planFinal
}

type resultJob struct {
	order []byte // the order message, copied
	due   time.Time
}

func newLab(st *stats, log *slog.Logger, engineAddr, run string, delay time.Duration) *lab {
	l := &lab{
		stats: st, log: log, delay: delay, run: run,
		jobs:          make(chan resultJob, 1024),
		early:         make(chan []byte, 64),
		seen:          map[string]bool{},
		resultedEarly: map[string]bool{},
		rng:           rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
		client:        &mllp.Client{Addr: engineAddr, ACKTimeout: 10 * time.Second},
	}
	l.plan = l.randomPlan
	return l
}

// ServeMLLP acknowledges a delivered message and queues a result for a
// new order.
func (l *lab) ServeMLLP(ctx context.Context, req mllp.Request) []byte {
	reply, m := ack(req.Payload, labApp)
	l.stats.labReceived.Add(1)
	if m == nil {
		l.stats.labUnparseable.Add(1)
		return reply
	}
	h := m.Header()
	if (h.MessageType == "ORM" || h.MessageType == "OML") && m.Get("ORC-1") == "NW" {
		l.stats.labOrders.Add(1)
		placer := m.Get("ORC-2.1")
		l.mu.Lock()
		dup := l.seen[placer]
		l.seen[placer] = true
		early := l.resultedEarly[placer]
		delete(l.resultedEarly, placer)
		l.mu.Unlock()
		if early {
			return reply // resulted already: the order only catches up
		}
		if dup {
			l.stats.labRedelivered.Add(1)
			return reply
		}
		job := resultJob{order: append([]byte(nil), req.Payload...), due: time.Now().Add(l.delay)}
		select {
		case l.jobs <- job:
		case <-ctx.Done():
		}
	}
	return reply
}

// resultFirst sends a final result for order at once, before careflow has
// the order (the EHR sends it late): the lab marks the order resulted, so
// the delivery that follows gets only its ACK.
func (l *lab) resultFirst(order []byte) {
	m, err := hl7v2.Parse(order)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.seen[m.Get("ORC-2.1")] = true
	l.resultedEarly[m.Get("ORC-2.1")] = true
	l.mu.Unlock()
	select {
	case l.early <- append([]byte(nil), order...):
	default: // the lab is busy: this order is simply resulted later
	}
}

// sendEarly sends the results resultFirst queued, until ctx ends.
func (l *lab) sendEarly(ctx context.Context) error {
	client := &mllp.Client{Addr: l.client.Addr, ACKTimeout: 10 * time.Second}
	defer client.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case order := <-l.early:
			m, err := hl7v2.Parse(order)
			if err != nil {
				continue
			}
			l.mu.Lock()
			l.seq++
			n := l.seq
			l.mu.Unlock()
			ctl := fmt.Sprintf("L%s-%d-early", l.run, n)
			msg := result(m, fmt.Sprintf("F%s-%d", l.run, n), ctl, "F", l.value, time.Now())
			l.stats.resultsSent.Add(1)
			l.stats.resultsEarly.Add(1)
			if reply, err := client.Send(ctx, msg); err == nil {
				countACK(reply, &l.stats.resultsACKed, &l.stats.resultsNAKed)
			} else if ctx.Err() == nil {
				l.stats.resultsFailed.Add(1)
			}
		}
	}
}

// sendResults sends each queued result when it is due, until ctx ends.
// Jobs are queued in arrival order with one delay, so they fall due in
// order too.
func (l *lab) sendResults(ctx context.Context) error {
	defer l.client.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case job := <-l.jobs:
			t := time.NewTimer(time.Until(job.due))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			l.sendResult(ctx, job.order)
		}
	}
}

// sendResult sends what the lab has to say about one order (its plan),
// each message retried a few times while careflow is unreachable, and
// counts the ACKs.
func (l *lab) sendResult(ctx context.Context, orderMsg []byte) {
	m, err := hl7v2.Parse(orderMsg)
	if err != nil {
		return // acknowledged with AR already; nothing to result
	}
	l.mu.Lock()
	l.seq++
	n := l.seq
	l.mu.Unlock()
	filler := fmt.Sprintf("F%s-%d", l.run, n)
	for i, s := range l.plan() {
		ctl := fmt.Sprintf("L%s-%d-%d", l.run, n, i+1)
		var msg []byte
		if s.orr != "" {
			msg = response(m, filler, ctl, s.control, time.Now())
		} else {
			msg = result(m, filler, ctl, s.status, l.value, time.Now())
		}
		if !l.send(ctx, msg, ctl) {
			return
		}
	}
}

// send sends one message to careflow, retrying while it is unreachable;
// false when it gave up or the demo is stopping.
func (l *lab) send(ctx context.Context, msg []byte, ctl string) bool {
	l.stats.resultsSent.Add(1)
	for attempt := 1; ; attempt++ {
		reply, err := l.client.Send(ctx, msg)
		if err == nil {
			countACK(reply, &l.stats.resultsACKed, &l.stats.resultsNAKed)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt == 5 {
			l.stats.resultsFailed.Add(1)
			l.log.Warn("lab: message not delivered to careflow", "addr", l.client.Addr, "control_id", ctl, "err", err)
			return false
		}
		t := time.NewTimer(time.Duration(attempt) * 500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func (l *lab) value(a analyte) (string, string) {
	l.rngMu.Lock()
	u := l.rng.Float64()
	l.rngMu.Unlock()
	return value(a, u)
}
