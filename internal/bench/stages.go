package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/internal/load"
	"github.com/careflow-health/careflow/topics"
	"github.com/careflow-health/careflow/topics/kafka"
)

// stageLogger, when set, gets the drained stages' logs (for debugging).
var stageLogger *slog.Logger

// StageRate is one stage's loop draining a backlog alone.
type StageRate struct {
	Stage   string
	Records int     // input records drained (deliver: one per destination)
	Rate    float64 // input records per second, first record in to last output committed
}

// StageLoops measures each stage's transactional loop on its own: ingest
// fills careflow.raw with n messages of the mix, then validate, normalise,
// route and deliver each run alone in a fresh engine on the same data
// directory and drain their input. Each rate runs from the stage's first
// consumed record to its last committed output, so the group join and the
// broker's start are not counted.
func StageLoops(ctx context.Context, cfgPath, examples, dataDir string, n int) ([]StageRate, error) {
	mix, err := LoadMix(examples)
	if err != nil {
		return nil, err
	}
	est, err := StartEstate(ctx, EstateOptions{Config: cfgPath, DataDir: dataDir, Stages: []string{topics.StageIngest}})
	if err != nil {
		return nil, err
	}
	res, err := load.Run(ctx, load.Config{Addr: est.EHR, Count: n, Connections: 8,
		Message: func(seq int) []byte { return mix.Message("S", seq) }})
	if cerr := est.Close(); err == nil {
		err = cerr
	}
	if err == nil && res.AA != n {
		err = fmt.Errorf("stage loops: ingest accepted %d of %d", res.AA, n)
	}
	if err != nil {
		return nil, err
	}
	deliveries := mix.Deliveries(0, n)
	var out []StageRate
	for _, st := range []struct {
		stage, output string // output: the topic (or prefix) counted
		in, want      int    // records in, and out once drained
	}{
		{topics.StageValidate, topics.Valid, n, n},
		{topics.StageNormalise, topics.Events, n, n},
		{topics.StageRoute, topics.Outbound(""), n, deliveries},
		{topics.StageDeliver, topics.Outcomes, deliveries, deliveries},
	} {
		r, err := drainStage(ctx, cfgPath, dataDir, st.stage, st.output, st.in, st.want)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func drainStage(ctx context.Context, cfgPath, dataDir, stage, output string, inputs, want int) (StageRate, error) {
	est, err := StartEstate(ctx, EstateOptions{Config: cfgPath, DataDir: dataDir, Stages: []string{stage}, Logger: stageLogger})
	if err != nil {
		return StageRate{}, err
	}
	defer est.Close()
	url := "http://" + est.eng.AdminAddr() + "/metrics"
	var first time.Time
	prev := time.Now()
	deadline := time.Now().Add(time.Minute)
	for {
		in, outRecs, err := scrapeStage(ctx, url, stage, output)
		if err != nil {
			return StageRate{}, err
		}
		now := time.Now()
		if first.IsZero() && in > 0 {
			// The stage started between the previous scrape and this
			// one: count from the previous, which errs on the slow side
			// by at most one poll interval and is never zero.
			first = prev
		}
		prev = now
		if outRecs >= want {
			if stageLogger != nil {
				stageLogger.Info("stage drained", "stage", stage, "in", in, "out", outRecs)
			}
			return StageRate{Stage: stage, Records: inputs, Rate: float64(inputs) / now.Sub(first).Seconds()}, nil
		}
		if now.After(deadline) {
			return StageRate{}, fmt.Errorf("stage %s: %d of %d records out after 1m (stand-ins acknowledged %v)", stage, outRecs, want, est.Delivered())
		}
		select {
		case <-ctx.Done():
			return StageRate{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// scrapeStage sums a stage's records in, and out to topics starting with
// output, from the admin endpoint's Prometheus text.
func scrapeStage(ctx context.Context, url, stage, output string) (in, out int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	label := `stage="` + stage + `"`
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		var dst *int
		switch {
		case strings.HasPrefix(line, "careflow_stage_records_in_total{"):
			dst = &in
		case strings.HasPrefix(line, "careflow_stage_records_out_total{") && strings.Contains(line, `topic="`+output):
			dst = &out
		default:
			continue
		}
		if !strings.Contains(line, label) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			*dst += int(v)
		}
	}
	return in, out, sc.Err()
}

// KafkaLimit is the broker's ceiling for an ingest-shaped writer: the
// embedded broker (as the engine runs it) takes n records, the mix's
// messages as values, from conns goroutines, each awaiting its acks=all
// answer before the next, through one franz-go client with no linger.
func KafkaLimit(ctx context.Context, examples, dataDir string, conns, n int) (float64, error) {
	mix, err := LoadMix(examples)
	if err != nil {
		return 0, err
	}
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{DataDir: dataDir, Port: -1})
	if err != nil {
		return 0, err
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DefaultProduceTopic(topics.Raw))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, 6, 1, kafka.MaxMessageBytes, topics.Raw); err != nil {
		return 0, fmt.Errorf("kafka limit: %w", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm-up")}).FirstErr(); err != nil {
		return 0, fmt.Errorf("kafka limit: %w", err)
	}
	var (
		mu   sync.Mutex
		next int
		ferr error
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for {
				mu.Lock()
				seq := next
				next++
				mu.Unlock()
				if seq >= n {
					return
				}
				r := &kgo.Record{Key: []byte(PatientPrefix + strconv.Itoa(seq)), Value: mix.Message("K", seq)}
				if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if ferr != nil {
		return 0, fmt.Errorf("kafka limit: %w", ferr)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
