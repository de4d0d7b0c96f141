// Command suite is `make bench`: it runs careflow's benchmarks beside the
// physical limits of the machine, each figure the median of several runs,
// each ratio the median of run-by-run ratios (both sides measured in the
// same round, because the machine is shared and noisy). It writes
// internal/bench/results.json and prints a markdown table.
//
//	go run ./internal/bench/suite [-runs 5] [-out internal/bench/results.json] [-quick]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"time"
)

// Figure is one line of internal/bench/results.json.
type Figure struct {
	Name    string    `json:"name"`
	Value   float64   `json:"value"` // the median of Samples
	Unit    string    `json:"unit"`
	Command string    `json:"command"`
	Samples []float64 `json:"samples"`
	// Beside names the physical limit this figure is read against.
	Beside string `json:"beside,omitempty"`
}

// sizes of the in-process measurements.
type sizes struct {
	echo, kafka1, kafka8, ingest1, ingest8, e2e, stages int
	backlogSmall, backlogLarge, processes               int
	latencyFor, phase                                   time.Duration
}

var full = sizes{echo: 20000, kafka1: 5000, kafka8: 20000, ingest1: 5000, ingest8: 20000, e2e: 20000, stages: 10000,
	backlogSmall: 10000, backlogLarge: 50000, processes: 6000,
	latencyFor: 2 * time.Second, phase: 3 * time.Second}

var quick = sizes{echo: 500, kafka1: 200, kafka8: 500, ingest1: 200, ingest8: 500, e2e: 500, stages: 300,
	backlogSmall: 200, backlogLarge: 400, processes: 300,
	latencyFor: 200 * time.Millisecond, phase: 300 * time.Millisecond}

func main() {
	runs := flag.Int("runs", 5, "runs of every measurement; figures are medians")
	out := flag.String("out", "internal/internal/bench/results.json", "where to write the figures as JSON")
	short := flag.Bool("quick", false, "small sizes and no go test benchmarks: check the suite works, not the figures")
	micro := flag.Bool("micro", true, "run the go test micro-benchmarks (parse, build, runner); false skips them")
	child := flag.Int("backlog-child", 0, "internal: run one backlog measurement of `N` messages and print it as JSON")
	withPeers := flag.Bool("peers", false, "measure only careflow ingest beside the peers in internal/bench/peers (make bench-peers)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *child > 0 {
		if err := backlogChild(ctx, *child); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	s := &suite{runs: *runs, sz: full, log: os.Stderr}
	if *short {
		s.sz, s.skipGoTest = quick, true
	}
	s.skipGoTest = s.skipGoTest || !*micro
	start := time.Now()
	run := s.run
	if *withPeers {
		n := 2000
		if *short {
			n = 200
		}
		run = func(ctx context.Context) error { return s.runPeers(ctx, n) }
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	data, err := json.MarshalIndent(s.figures, "", "  ")
	if err == nil {
		err = os.WriteFile(*out, append(data, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: write results:", err)
		os.Exit(1)
	}
	s.markdown(os.Stdout, time.Since(start))
}

type suite struct {
	runs       int
	sz         sizes
	skipGoTest bool
	log        io.Writer
	figures    []Figure
	byName     map[string]*Figure
	ratios     []ratio
}

type ratio struct {
	name, what string
	value      float64
}

// add records a figure from its samples.
func (s *suite) add(name, unit, command, beside string, samples []float64) {
	if len(samples) == 0 {
		return
	}
	s.figures = append(s.figures, Figure{Name: name, Value: median(samples), Unit: unit, Command: command, Samples: samples, Beside: beside})
}

func (s *suite) fig(name string) *Figure {
	for i := range s.figures {
		if s.figures[i].Name == name {
			return &s.figures[i]
		}
	}
	return nil
}

// addRatio records the median of a[i] ÷ b[i] over the runs.
func (s *suite) addRatio(name, what, a, b string) {
	fa, fb := s.fig(a), s.fig(b)
	if fa == nil || fb == nil {
		return
	}
	s.ratios = append(s.ratios, ratio{name: name, what: what, value: pairRatio(fa.Samples, fb.Samples)})
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pairRatio is the median over i of a[i] ÷ b[i].
func pairRatio(a, b []float64) float64 {
	var r []float64
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return median(r)
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
