package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/internal/load"
	"github.com/careflow-health/careflow/topics"
)

// Mix is the end-to-end message mix, from the example messages in dir:
// ADT^A01 (to lab, portal and the FHIR store), ORM^O01 (to lab and the
// FHIR store), ADT^A08 (to lab, portal and the FHIR store), ADT^A01
// again. Message seq has patient PatientPrefix+seq and
// control id prefix+seq, so every message is a new patient on its own
// partition key and no receiver deduplicates it.
type Mix struct {
	templates [][]byte
}

// mixFiles are the example messages of the mix, in order.
var mixFiles = []string{"adt_a01.hl7", "orm_o01.hl7", "adt_a08.hl7", "adt_a01.hl7"}

// mixPatient is the patient identifier the example messages share.
const mixPatient = "NG100234"

// LoadMix reads the mix from dir (examples/messages).
func LoadMix(dir string) (*Mix, error) {
	m := &Mix{}
	for _, f := range mixFiles {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("load the benchmark mix: %w", err)
		}
		msgs, err := hl7v2.SplitFile(data)
		if err != nil {
			return nil, fmt.Errorf("load the benchmark mix: %s: %w", f, err)
		}
		if len(msgs) != 1 || !bytes.Contains(msgs[0], []byte(mixPatient)) {
			return nil, fmt.Errorf("load the benchmark mix: %s should hold one message for patient %s", f, mixPatient)
		}
		m.templates = append(m.templates, msgs[0])
	}
	return m, nil
}

// Message returns message seq with control id prefix+seq.
func (m *Mix) Message(prefix string, seq int) []byte {
	s := strconv.Itoa(seq)
	msg := bytes.ReplaceAll(m.templates[seq%len(m.templates)], []byte(mixPatient), []byte(PatientPrefix+s))
	return load.WithControlID(msg, prefix+s)
}

// Deliveries is how many deliveries messages [from, to) of the mix make:
// every one reaches the lab and the FHIR store, the ADTs the portal too.
func (m *Mix) Deliveries(from, to int) int { return 2*(to-from) + m.ToPortal(from, to) }

// ToPortal is how many of messages [from, to) reach the portal: the ADTs.
func (m *Mix) ToPortal(from, to int) int {
	n := 0
	for seq := from; seq < to; seq++ {
		if seq%len(m.templates) != 1 {
			n++
		}
	}
	return n
}

// EchoLimit sends n messages closed loop over conns connections to a
// minimal MLLP server that answers each frame with a fixed ACK and does
// nothing else: the ceiling of any MLLP ingest on this machine.
func EchoLimit(ctx context.Context, corpus [][]byte, conns, n int) (load.Result, error) {
	addr, stop, err := StartEcho()
	if err != nil {
		return load.Result{}, err
	}
	defer stop()
	return load.Run(ctx, load.Config{Addr: addr, Count: n, Connections: conns, Corpus: corpus})
}

// IngestResult is one ingest measurement.
type IngestResult struct {
	Peak load.Result // closed loop: the most the engine acknowledges
	At50 load.Result // open loop at half of Peak.Rate: ACK latency
}

// Ingest runs the ingest stage alone (ACK after the acks=all write to the
// embedded broker and, with ack: validated, the accept rules) and measures
// its peak over conns connections with n messages, then ACK latency at half
// that rate for latencyFor (none when 0). ack overrides every interface's
// ack mode; "" keeps the configuration's.
func Ingest(ctx context.Context, cfgPath, examples, dataDir, ack string, conns, n int, latencyFor time.Duration) (IngestResult, error) {
	mix, err := LoadMix(examples)
	if err != nil {
		return IngestResult{}, err
	}
	est, err := StartEstate(ctx, EstateOptions{Config: cfgPath, DataDir: dataDir, Stages: []string{topics.StageIngest}, Ack: ack})
	if err != nil {
		return IngestResult{}, err
	}
	defer est.Close()
	var out IngestResult
	base := 0
	run := func(rate float64, count int, d time.Duration) (load.Result, error) {
		from := base
		res, err := load.Run(ctx, load.Config{Addr: est.EHR, Rate: rate, Count: count, Duration: d, Connections: conns,
			Message: func(seq int) []byte { return mix.Message("I", from+seq) }})
		base += res.Sent
		if err == nil && res.AA != res.Sent {
			err = fmt.Errorf("ingest: %d of %d messages not accepted: %+v", res.Sent-res.AA, res.Sent, res)
		}
		return res, err
	}
	if _, err := run(0, 200, 0); err != nil { // warm up: connections, topics, producer
		return out, err
	}
	if out.Peak, err = run(0, n, 0); err != nil || latencyFor == 0 {
		return out, err
	}
	out.At50, err = run(out.Peak.Rate/2, 0, latencyFor)
	return out, err
}

// Latency is ingest-to-delivered latency of one open-loop phase, from each
// message's scheduled send time to its arrival at the stand-in lab.
type Latency struct {
	Rate          float64 // offered msgs/s
	P50, P95, P99 time.Duration
	Max           time.Duration
	Sent, Missing int // Missing: not delivered within the wait
}

// E2EResult is one end-to-end measurement.
type E2EResult struct {
	Peak       float64 // messages per second from first send to last delivery
	Messages   int
	Deliveries int
	At50, At90 Latency
}

// EndToEnd runs every stage in one process on the embedded broker with
// the demo's routes: n messages closed loop over 8 connections give the
// sustained peak (first send to last ACKed delivery at the stand-ins),
// then open-loop phases of phase each at 50% and 90% of it give latency.
func EndToEnd(ctx context.Context, cfgPath, examples, dataDir string, n int, phase time.Duration) (E2EResult, error) {
	mix, err := LoadMix(examples)
	if err != nil {
		return E2EResult{}, err
	}
	est, err := StartEstate(ctx, EstateOptions{Config: cfgPath, DataDir: dataDir})
	if err != nil {
		return E2EResult{}, err
	}
	defer est.Close()
	var out E2EResult
	base, want := 0, 0
	send := func(rate float64, count int, d time.Duration) (load.Result, int, error) {
		from := base
		res, err := load.Run(ctx, load.Config{Addr: est.EHR, Rate: rate, Count: count, Duration: d, Connections: 8,
			Message: func(seq int) []byte { return mix.Message("E", from+seq) }})
		base += res.Sent
		want += mix.Deliveries(from, base)
		if err == nil && res.AA != res.Sent {
			err = fmt.Errorf("end to end: %d of %d messages not accepted at ingest", res.Sent-res.AA, res.Sent)
		}
		if err != nil {
			return res, from, err
		}
		return res, from, est.waitDelivered(ctx, want, 2*time.Minute)
	}
	if _, _, err := send(0, 200, 0); err != nil { // warm up every stage and destination
		return out, err
	}
	est.Arrivals()
	res, _, err := send(0, n, 0)
	if err != nil {
		return out, err
	}
	est.Arrivals()
	out.Messages, out.Deliveries = n, mix.Deliveries(0, n)
	out.Peak = float64(n) / est.LastDelivery().Sub(res.Start).Seconds()
	for _, ph := range []struct {
		frac float64
		dst  *Latency
	}{{0.5, &out.At50}, {0.9, &out.At90}} {
		rate := ph.frac * out.Peak
		res, from, err := send(rate, 0, phase)
		if err != nil {
			return out, err
		}
		*ph.dst = latencies(res, from, est.Arrivals())
		ph.dst.Rate = rate
	}
	return out, nil
}

func latencies(res load.Result, from int, arrivals map[int]time.Time) Latency {
	lat := Latency{Sent: res.Sent}
	var ds []time.Duration
	for i := range res.Sent {
		at, ok := arrivals[from+i]
		if !ok {
			lat.Missing++
			continue
		}
		ds = append(ds, at.Sub(res.Start.Add(time.Duration(i)*res.Interval)))
	}
	slices.Sort(ds)
	lat.P50, lat.P95, lat.P99 = load.Quantile(ds, 0.5), load.Quantile(ds, 0.95), load.Quantile(ds, 0.99)
	if len(ds) > 0 {
		lat.Max = ds[len(ds)-1]
	}
	return lat
}

// waitDelivered polls until the stand-ins have acknowledged want
// deliveries in all.
func (e *Estate) waitDelivered(ctx context.Context, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got := 0
		for _, n := range e.Delivered() {
			got += n
		}
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("end to end: %d of %d deliveries after %s", got, want, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
