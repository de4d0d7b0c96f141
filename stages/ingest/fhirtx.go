// This file is the FHIR interfaces' Kafka writer: a few transactional
// producers, each write one transaction of its raw record and resource
// versions, committed before the client hears 2xx.

package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fhirProducers is how many transactions can be open at once: writes to
// different resources run in parallel up to it.
const fhirProducers = 4

// fhirTxTimeout bounds a FHIR write's transaction at the broker. It is
// short because one left open (careflow gone mid-commit) holds back every
// read_committed reader of careflow.raw until the broker aborts it.
const fhirTxTimeout = 10 * time.Second

// txWriter commits records as one transaction each, on a pool of
// transactional producers.
type txWriter struct {
	opts []kgo.Opt
	id   string
	pool chan *slot

	mu       sync.Mutex
	closed   bool
	all      []*kgo.Client
	inflight sync.WaitGroup // commits under way, which close waits for
}

// newTxWriter prepares the pool; producers are made on first use, so an
// estate without FHIR interfaces opens none. id prefixes each producer's
// transactional id; fresh adds a random suffix (the embedded broker keeps
// no transaction state across its restarts).
func newTxWriter(opts []kgo.Opt, id string, fresh bool) *txWriter {
	if fresh {
		var b [6]byte
		_, _ = rand.Read(b[:])
		id += "-" + hex.EncodeToString(b[:])
	}
	w := &txWriter{opts: opts, id: id, pool: make(chan *slot, fhirProducers)}
	for i := range fhirProducers {
		w.pool <- &slot{n: i}
	}
	return w
}

// slot is one producer of the pool: its own transactional id, so that no
// two fence each other.
type slot struct {
	n  int
	cl *kgo.Client // nil until first used, and after a failure
}

// commit writes recs in one transaction and returns once it is committed;
// on any error nothing of recs is visible to read_committed consumers.
func (w *txWriter) commit(ctx context.Context, recs []*kgo.Record) (err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("ingest is shutting down")
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	defer w.inflight.Done()
	var sl *slot
	select {
	case sl = <-w.pool:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() {
		if err != nil && sl.cl != nil {
			// A producer whose transaction failed may be fenced or in an
			// unknown state, and the broker may still hold its transaction
			// open. A new producer with the same id, once it has its
			// producer id, has fenced the old one and had the coordinator
			// abort what it left open; failing that, the broker aborts it
			// after fhirTxTimeout.
			sl.cl.Close()
			w.forget(sl.cl)
			sl.cl = nil
			if cl, oerr := w.open(sl.n); oerr == nil {
				if _, _, ierr := cl.ProducerID(context.WithoutCancel(ctx)); ierr == nil {
					sl.cl = cl
				} else {
					cl.Close()
					w.forget(cl)
				}
			}
		}
		w.pool <- sl
	}()
	if sl.cl == nil {
		if sl.cl, err = w.open(sl.n); err != nil {
			return err
		}
	}
	cl := sl.cl
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin a FHIR write's transaction: %w", err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
		return fmt.Errorf("write a FHIR write's records: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// Abort what the broker may still hold open: an open transaction
		// holds back every read_committed reader of careflow.raw until it
		// times out (fhirTxTimeout, when even the abort fails).
		if aerr := cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort); aerr != nil {
			err = fmt.Errorf("%w; abort: %v", err, aerr)
		}
		return fmt.Errorf("commit a FHIR write: %w", err)
	}
	return nil
}

func (w *txWriter) open(slot int) (*kgo.Client, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, w.opts...),
		kgo.TransactionalID(w.id+"-"+strconv.Itoa(slot)), kgo.TransactionTimeout(fhirTxTimeout), kgo.ProducerLinger(0),
		kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return nil, fmt.Errorf("open a FHIR transactional producer: %w", err)
	}
	w.all = append(w.all, cl)
	return cl, nil
}

func (w *txWriter) forget(cl *kgo.Client) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range w.all {
		if c == cl {
			w.all = append(w.all[:i], w.all[i+1:]...)
			return
		}
	}
}

// close waits for the commits under way, then closes every producer;
// commits after it fail (their writes are answered 503: resend).
func (w *txWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.inflight.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.all {
		c.Close()
	}
	w.all = nil
}
