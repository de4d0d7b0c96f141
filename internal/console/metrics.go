package console

import (
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// snapshot is one reading of the engine's metrics, by family name.
type snapshot map[string]*dto.MetricFamily

func (c *Console) snapshot() snapshot {
	fams, err := c.cfg.Metrics.Gather()
	if err != nil {
		c.log.Warn("console: read metrics", "err", err)
	}
	s := snapshot{}
	for _, f := range fams {
		s[f.GetName()] = f
	}
	return s
}

// sum adds the values of family name's series whose labels include every
// pair of want (name, value, name, value...).
func (s snapshot) sum(name string, want ...string) (float64, bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
	var total float64
	found := false
	for _, m := range f.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return total, found
}

func hasLabels(m *dto.Metric, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		ok := false
		for _, l := range m.GetLabel() {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// rateSample is how often the counters behind the estate's rates are
// read; rateWindow is how far back a rate looks.
const (
	rateSample = 5 * time.Second
	rateWindow = time.Minute
)

type reading struct {
	at time.Time
	v  float64
}

// rates keeps, per counter, the readings of the last rateWindow, so that
// the estate shows a rate per minute without Prometheus.
type rates struct {
	mu sync.Mutex
	m  map[string][]reading
}

func newRates() *rates { return &rates{m: map[string][]reading{}} }

func (r *rates) add(key string, at time.Time, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := append(r.m[key], reading{at, v})
	for len(rs) > 1 && at.Sub(rs[0].at) > rateWindow+rateSample {
		rs = rs[1:]
	}
	r.m[key] = rs
}

// perMinute is the counter's rate over the readings kept; -1 before two
// readings exist.
func (r *rates) perMinute(key string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.m[key]
	if len(rs) < 2 {
		return -1
	}
	first, last := rs[0], rs[len(rs)-1]
	el := last.at.Sub(first.at).Minutes()
	if el <= 0 || last.v < first.v {
		return -1
	}
	return (last.v - first.v) / el
}

func (c *Console) sampleRates() {
	s := c.snapshot()
	now := c.cfg.Now()
	for _, in := range c.cfg.Estate.Inbound {
		v, _ := s.sum("careflow_ingest_messages_total", "interface", in.Name, "result", "accepted")
		c.rates.add("in/"+in.Name, now, v)
	}
	for _, d := range c.cfg.Estate.Destinations {
		v, _ := s.sum("careflow_deliver_results_total", "destination", d.Name, "result", "delivered")
		c.rates.add("out/"+d.Name, now, v)
	}
}
