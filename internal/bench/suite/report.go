package main

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// target is one of issue 4's targets, checked against a figure or ratio.
type target struct {
	text  string
	value func(s *suite) (float64, bool)
	ok    func(v float64) bool
	unit  string
}

func figure(name string) func(s *suite) (float64, bool) {
	return func(s *suite) (float64, bool) {
		f := s.fig(name)
		if f == nil {
			return 0, false
		}
		return f.Value, true
	}
}

func ratioOf(name string) func(s *suite) (float64, bool) {
	return func(s *suite) (float64, bool) {
		for _, r := range s.ratios {
			if r.name == name {
				return r.value, true
			}
		}
		return 0, false
	}
}

var targets = []target{
	{"parse a 2 KB message in ≤ 3× the scan limit", ratioOf("parse ÷ scan (ADT 2 KB, 4 fields read)"), func(v float64) bool { return v <= 3 }, "×"},
	{"parse a 2 KB message with ≤ 5 allocations", figure("hl7v2.parse.adt_2kb.allocs"), func(v float64) bool { return v <= 5 }, "allocs"},
	{"ingest ≥ 30,000 msgs/s over 8 connections", figure("ingest.conns_8.rate"), func(v float64) bool { return v >= 30000 }, "msgs/s"},
	{"ingest ≥ 5,000 msgs/s over 1 connection", figure("ingest.conns_1.rate"), func(v float64) bool { return v >= 5000 }, "msgs/s"},
	{"ingest ACK p99 < 5 ms at 50% of peak, 8 connections", figure("ingest.conns_8.ack_p99_at_50pct"), func(v float64) bool { return v < 5 }, "ms"},
	{"ingest ACK p99 < 5 ms at 50% of peak, 1 connection", figure("ingest.conns_1.ack_p99_at_50pct"), func(v float64) bool { return v < 5 }, "ms"},
	{"end to end ≥ 10,000 msgs/s, one process", figure("e2e.one_process.rate"), func(v float64) bool { return v >= 10000 }, "msgs/s"},
	{"end to end p99 < 100 ms at 50% of peak", figure("e2e.one_process.p99_at_50pct"), func(v float64) bool { return v < 100 }, "ms"},
	{"backlog drain ≥ the end-to-end rate", sizedRatio(drainRatio), func(v float64) bool { return v >= 1 }, "×"},
	{"resident memory < 300 MB with a backlog (the engine's process, larger backlog)", largeBacklog("engine_peak_rss"), func(v float64) bool { return v*1.048576 < 300 }, "MiB"}, // MiB measured, MB (10^6 bytes) in the target
	{"resident memory flat whatever the backlog (the engine's peak, larger ÷ smaller ≤ 1.1)", sizedRatio(engineFlatRatio), func(v float64) bool { return v <= 1.1 }, "×"},
}

// sizedRatio reads a ratio whose name depends on the run's sizes.
func sizedRatio(name func(sizes) string) func(*suite) (float64, bool) {
	return func(s *suite) (float64, bool) { return ratioOf(name(s.sz))(s) }
}

// largeBacklog reads a figure of the larger backlog of the run.
func largeBacklog(field string) func(*suite) (float64, bool) {
	return func(s *suite) (float64, bool) { return figure(backlogKey(s.sz.backlogLarge) + field)(s) }
}

func drainRatio(sz sizes) string {
	return fmt.Sprintf("backlog drain (%s) ÷ end to end", backlogName(sz.backlogLarge))
}

func engineFlatRatio(sz sizes) string {
	return fmt.Sprintf("engine peak RSS, backlog %s ÷ %s", backlogName(sz.backlogLarge), backlogName(sz.backlogSmall))
}

// markdown prints the tables that BENCHMARKS.md holds.
func (s *suite) markdown(w io.Writer, took time.Duration) {
	fmt.Fprintf(w, "## careflow benchmarks: %d runs, %s, GOMAXPROCS %d, %s, took %s\n\n", s.runs, runtime.Version(), runtime.GOMAXPROCS(0), time.Now().UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	fmt.Fprintln(w, "| figure | median | unit | min – max of runs | read beside |")
	fmt.Fprintln(w, "|---|---:|---|---|---|")
	for _, f := range s.figures {
		lo, hi := f.Samples[0], f.Samples[0]
		for _, v := range f.Samples {
			lo, hi = min(lo, v), max(hi, v)
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s – %s | %s |\n", f.Name, num(f.Value), f.Unit, num(lo), num(hi), quoteList(f.Beside))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| ratio (median of run-by-run ratios) | value | what it says |")
	fmt.Fprintln(w, "|---|---:|---|")
	for _, r := range s.ratios {
		fmt.Fprintf(w, "| %s | %.2f | %s |\n", r.name, r.value, r.what)
	}
	header := false
	for _, t := range targets {
		v, ok := t.value(s)
		if !ok {
			continue // not part of this run (-peers, -micro=false)
		}
		if !header {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "| target (issue 4) | measured | met |")
			fmt.Fprintln(w, "|---|---:|---|")
			header = true
		}
		switch {
		case t.ok(v):
			fmt.Fprintf(w, "| %s | %s %s | yes |\n", t.text, num(v), t.unit)
		default:
			fmt.Fprintf(w, "| %s | %s %s | **no** |\n", t.text, num(v), t.unit)
		}
	}
}

// num prints a figure with three significant digits, thousands grouped.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000 || v <= -1000:
		return group(strconv.FormatFloat(v, 'f', 0, 64))
	case v >= 100 || v <= -100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10 || v <= -10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func quoteList(s string) string {
	if s == "" {
		return ""
	}
	parts := strings.Split(s, ", ")
	for i, p := range parts {
		parts[i] = "`" + p + "`"
	}
	return strings.Join(parts, ", ")
}
