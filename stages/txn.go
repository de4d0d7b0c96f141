package stages

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/topics"
)

// txn collects one transaction's produces: they are sent as they are made
// (franz-go batches them) and awaited by End's flush; the first failure
// aborts the transaction.
type txn struct {
	r    *Runner
	sess *kgo.GroupTransactSession
	ctx  context.Context

	mu  sync.Mutex
	err error
	out map[[2]string]int // (topic, interface) → records produced
}

func (t *txn) produce(outs []Envelope) {
	for _, e := range outs {
		t.mu.Lock()
		if t.out == nil {
			t.out = map[[2]string]int{}
		}
		t.out[[2]string{e.Topic, e.Headers.Get(topics.HeaderInterface)}]++
		t.mu.Unlock()
		t.sess.Produce(t.ctx, ToRecord(e), func(_ *kgo.Record, err error) {
			if err != nil {
				t.mu.Lock()
				if t.err == nil {
					t.err = err
				}
				t.mu.Unlock()
			}
		})
	}
}

// fail aborts the transaction with err, as a failed produce would.
func (t *txn) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
	}
}

func (t *txn) produceErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// commitMetrics counts outputs only once they are committed, so the metric
// matches what readers see.
func (t *txn) commitMetrics() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, n := range t.out {
		t.r.cfg.Metrics.Out.WithLabelValues(t.r.cfg.Stage, k[0], k[1]).Add(float64(n))
	}
}
