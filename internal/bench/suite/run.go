package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/bench"
)

const (
	demoConfig = "examples/demo/careflow.yaml"
	examples   = "examples/messages"
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// run measures everything: the go test benchmarks first (each already
// repeated -count times), then s.runs rounds of the in-process ones.
func (s *suite) run(ctx context.Context) error {
	if !s.skipGoTest {
		// A package that does not build (another engineer mid-change)
		// loses its figures, not the whole suite: they show as missing.
		if err := s.goTests(); err != nil {
			s.logf("skipped the rest of the go test benchmarks: %v", err)
		}
	}
	samples := map[string][]float64{}
	put := func(name string, v float64) { samples[name] = append(samples[name], v) }
	mix, err := bench.LoadMix(examples)
	if err != nil {
		return err
	}
	corpus := [][]byte{mix.Message("C", 0)}
	binDir, err := os.MkdirTemp("", "careflow-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	binary := filepath.Join(binDir, "careflow")
	if out, err := exec.Command("go", "build", "-o", binary, "./cmd/careflow").CombinedOutput(); err != nil {
		return fmt.Errorf("build careflow for the per-process run: %w\n%s", err, out)
	}
	for round := range s.runs {
		s.logf("round %d of %d: MLLP echo, Kafka, ingest, end to end, stage loops", round+1, s.runs)
		for _, conns := range []int{1, 8} {
			res, err := bench.EchoLimit(ctx, corpus, conns, s.sz.echo)
			if err != nil {
				return err
			}
			put(fmt.Sprintf("limit.mllp_echo.conns_%d", conns), res.Rate)
		}
		for _, c := range []struct{ conns, n int }{{1, s.sz.kafka1}, {8, s.sz.kafka8}} {
			rate, err := withDir(func(dir string) (float64, error) { return bench.KafkaLimit(ctx, examples, dir, c.conns, c.n) })
			if err != nil {
				return err
			}
			put(fmt.Sprintf("limit.kafka_awaited.conns_%d", c.conns), rate)
		}
		for _, c := range []struct{ conns, n int }{{1, s.sz.ingest1}, {8, s.sz.ingest8}} {
			res, err := withDir(func(dir string) (bench.IngestResult, error) {
				return bench.Ingest(ctx, demoConfig, examples, dir, "", c.conns, c.n, s.sz.latencyFor)
			})
			if err != nil {
				return err
			}
			p := fmt.Sprintf("ingest.conns_%d.", c.conns)
			put(p+"rate", res.Peak.Rate)
			put(p+"ack_p50_at_50pct", ms(res.At50.P50))
			put(p+"ack_p99_at_50pct", ms(res.At50.P99))
			put(p+"ack_failures_at_50pct", float64(res.At50.Sent-res.At50.AA))
		}
		// The demo's interfaces use ack: validated; the same run with
		// ack: commit prices the accept rules before the ACK.
		commit, err := withDir(func(dir string) (bench.IngestResult, error) {
			return bench.Ingest(ctx, demoConfig, examples, dir, config.AckCommit, 8, s.sz.ingest8, 0)
		})
		if err != nil {
			return err
		}
		put("ingest.ack_commit.conns_8.rate", commit.Peak.Rate)
		for _, c := range []struct{ conns, n int }{{1, s.sz.ingest1}, {8, s.sz.ingest8}} {
			rate, err := withDir(func(dir string) (float64, error) { return bench.FHIRIngest(ctx, dir, c.conns, c.n) })
			if err != nil {
				return err
			}
			put(fmt.Sprintf("ingest.fhir_creates.conns_%d.rate", c.conns), rate)
		}
		e2e, err := withDir(func(dir string) (bench.E2EResult, error) {
			return bench.EndToEnd(ctx, demoConfig, examples, dir, s.sz.e2e, s.sz.phase)
		})
		if err != nil {
			return err
		}
		put("e2e.one_process.rate", e2e.Peak)
		for _, l := range []struct {
			name string
			lat  bench.Latency
		}{{"50pct", e2e.At50}, {"90pct", e2e.At90}} {
			put("e2e.one_process.p50_at_"+l.name, ms(l.lat.P50))
			put("e2e.one_process.p95_at_"+l.name, ms(l.lat.P95))
			put("e2e.one_process.p99_at_"+l.name, ms(l.lat.P99))
			put("e2e.one_process.undelivered_at_"+l.name, float64(l.lat.Missing))
		}
		loops, err := withDir(func(dir string) ([]bench.StageRate, error) {
			return bench.StageLoops(ctx, demoConfig, examples, dir, s.sz.stages)
		})
		if err != nil {
			return err
		}
		for _, l := range loops {
			put("stage."+l.Stage+".rate", l.Rate)
		}
		for _, copies := range []int{1, 2} {
			rate, err := withDir(func(dir string) (float64, error) {
				return bench.EndToEndProcesses(ctx, binary, demoConfig, examples, dir, s.sz.processes, copies)
			})
			if err != nil {
				return err
			}
			put(fmt.Sprintf("e2e.processes.copies_%d.rate", copies), rate)
		}
		pi, err := withDir(func(dir string) (bench.ProcessIngest, error) {
			return bench.FHIRIngestProcess(ctx, binary, examples, dir, s.sz.processes)
		})
		if err != nil {
			return err
		}
		put("process.fhir_creates.rate", pi.FHIRCreates)
		put("process.hl7v2_ingest.rate", pi.HL7v2)
		for _, n := range []int{s.sz.backlogSmall, s.sz.backlogLarge} {
			res, err := s.backlog(ctx, binary, n)
			if err != nil {
				return err
			}
			key := backlogKey(n)
			put(key+"drain_rate", res.DrainRate)
			put(key+"engine_peak_rss", res.EnginePeakRSSMiB)
			put(key+"engine_outage_peak_rss", res.EngineOutagePeakRSSMiB)
			put(key+"engine_rss_before", res.EngineRSSBeforeMiB)
			put(key+"broker_peak_rss", res.BrokerPeakRSSMiB)
		}
	}
	cmd := func(what string) string { return "go run ./internal/bench/suite (" + what + ")" }
	for _, c := range []int{1, 8} {
		n := fmt.Sprint(c)
		s.add("limit.mllp_echo.conns_"+n, "msgs/s", cmd(fmt.Sprintf("bench.EchoLimit: fixed-ACK MLLP server, %d messages closed loop over %d connections", s.sz.echo, c)), "", samples["limit.mllp_echo.conns_"+n])
		s.add("limit.kafka_awaited.conns_"+n, "records/s", cmd(fmt.Sprintf("bench.KafkaLimit: embedded broker, acks=all, %d writers each awaiting its answer", c)), "", samples["limit.kafka_awaited.conns_"+n])
	}
	for _, c := range []struct{ conns, n int }{{1, s.sz.ingest1}, {8, s.sz.ingest8}} {
		p := fmt.Sprintf("ingest.conns_%d.", c.conns)
		what := cmd(fmt.Sprintf("bench.Ingest: ingest stage alone on the embedded broker, %d messages closed loop over %d connections, then open loop at 50%% of that for %s", c.n, c.conns, s.sz.latencyFor))
		s.add(p+"rate", "msgs/s", what, fmt.Sprintf("limit.mllp_echo.conns_%d, limit.kafka_awaited.conns_%d", c.conns, c.conns), samples[p+"rate"])
		s.add(p+"ack_p50_at_50pct", "ms", what, "", samples[p+"ack_p50_at_50pct"])
		s.add(p+"ack_p99_at_50pct", "ms", what, "", samples[p+"ack_p99_at_50pct"])
		s.add(p+"ack_failures_at_50pct", "msgs", what, "", samples[p+"ack_failures_at_50pct"])
	}
	s.add("ingest.ack_commit.conns_8.rate", "msgs/s", cmd(fmt.Sprintf("bench.Ingest with every interface at ack: commit (ACK once stored, rules not run first), %d messages closed loop over 8 connections", s.sz.ingest8)), "ingest.conns_8.rate", samples["ingest.ack_commit.conns_8.rate"])
	for _, c := range []struct{ conns, n int }{{1, s.sz.ingest1}, {8, s.sz.ingest8}} {
		name := fmt.Sprintf("ingest.fhir_creates.conns_%d.rate", c.conns)
		s.add(name, "creates/s", cmd(fmt.Sprintf("bench.FHIRIngest: ingest stage alone on the embedded broker, a FHIR interface, %d Observation creates (POST, each naming one of 100 patients) closed loop over %d HTTP connections, each answered 201 once careflow.raw and careflow.fhir hold it", c.n, c.conns)),
			fmt.Sprintf("ingest.conns_%d.rate", c.conns), samples[name])
	}
	e2eCmd := cmd(fmt.Sprintf("bench.EndToEnd: every stage in one process, demo routes, %d messages closed loop over 8 connections to ACKed delivery, then open loop for %s at 50%% and 90%% of that", s.sz.e2e, s.sz.phase))
	s.pipelineCeiling(mix, s.sz.e2e)
	s.add("e2e.one_process.rate", "msgs/s", e2eCmd, "limit.pipeline_copy", samples["e2e.one_process.rate"])
	for _, at := range []string{"50pct", "90pct"} {
		for _, q := range []string{"p50", "p95", "p99"} {
			s.add("e2e.one_process."+q+"_at_"+at, "ms", e2eCmd, "", samples["e2e.one_process."+q+"_at_"+at])
		}
		s.add("e2e.one_process.undelivered_at_"+at, "msgs", e2eCmd, "", samples["e2e.one_process.undelivered_at_"+at])
	}
	for _, st := range []string{"validate", "normalise", "route", "deliver"} {
		s.add("stage."+st+".rate", "records/s", cmd(fmt.Sprintf("bench.StageLoops: the stage alone drains a backlog of %d messages", s.sz.stages)), "limit.runner_copy", samples["stage."+st+".rate"])
	}
	for _, copies := range []int{1, 2} {
		name := fmt.Sprintf("e2e.processes.copies_%d.rate", copies)
		s.add(name, "msgs/s", cmd(fmt.Sprintf("bench.EndToEndProcesses: `careflow stage NAME` as its own process per stage, %d cop(ies) of each but ingest, embedded broker and registry in the suite's process, %d messages closed loop over 8 connections to ACKed delivery", copies, s.sz.processes)), "e2e.one_process.rate", samples[name])
	}
	piCmd := cmd(fmt.Sprintf("bench.FHIRIngestProcess: `careflow run` (every stage, its own embedded broker) as its own process, %d FHIR Observation creates over 8 HTTP connections, then %d HL7 v2 messages over 8 MLLP connections (ack: commit), against the same process", s.sz.processes, s.sz.processes))
	s.add("process.fhir_creates.rate", "creates/s", piCmd, "process.hl7v2_ingest.rate", samples["process.fhir_creates.rate"])
	s.add("process.hl7v2_ingest.rate", "msgs/s", piCmd, "", samples["process.hl7v2_ingest.rate"])
	for _, n := range []int{s.sz.backlogSmall, s.sz.backlogLarge} {
		key := backlogKey(n)
		what := cmd(fmt.Sprintf("bench.Backlog in a child process that hosts the embedded broker, registry, stand-ins and load generator: `careflow run` (every stage) as its own process, lab down while %d messages arrive, then up", n))
		s.add(key+"drain_rate", "deliveries/s", what, "e2e.one_process.rate", samples[key+"drain_rate"])
		s.add(key+"engine_peak_rss", "MiB", what+"; the engine process's VmHWM", "", samples[key+"engine_peak_rss"])
		s.add(key+"engine_outage_peak_rss", "MiB", what+"; the engine process's VmHWM before the lab comes back", "", samples[key+"engine_outage_peak_rss"])
		s.add(key+"engine_rss_before", "MiB", what+"; the engine process's VmRSS before the first message", "", samples[key+"engine_rss_before"])
		s.add(key+"broker_peak_rss", "MiB", what+"; VmHWM of the child hosting the embedded broker (kfake keeps its log in memory)", "", samples[key+"broker_peak_rss"])
	}
	s.ratiosAll()
	return nil
}

// withDir calls fn with a fresh temporary directory, removed after.
func withDir[T any](fn func(dir string) (T, error)) (T, error) {
	dir, err := os.MkdirTemp("", "careflow-bench-")
	if err != nil {
		var zero T
		return zero, err
	}
	defer os.RemoveAll(dir)
	return fn(dir)
}

// goTests runs the go test benchmarks: the HL7 parser beside its scan
// limit, and the runner beside the plain producer.
func (s *suite) goTests() error {
	s.logf("go test benchmarks: connectors/hl7v2")
	hl7, cmd, err := goBench("./connectors/hl7v2", "^Benchmark(Scan|ScanFields|Parse|BuildACK|Builder)$", s.runs, "-benchtime", "500ms")
	if err != nil {
		return err
	}
	for _, b := range []struct{ name, bench string }{
		{"limit.hl7_scan", "BenchmarkScanFields"},
		{"limit.hl7_scan_segments", "BenchmarkScan"},
		{"hl7v2.parse.adt_2kb", "BenchmarkParse/ADT_2KB"},
		{"hl7v2.parse.adt_2kb_only", "BenchmarkParse/ADT_2KB_only"},
		{"hl7v2.parse.oru", "BenchmarkParse/ORU_multi_OBR"},
		{"hl7v2.build.ack_aa", "BenchmarkBuildACK/AA"},
		{"hl7v2.build.ack_ae", "BenchmarkBuildACK/AE_one_error"},
		{"hl7v2.build.adt", "BenchmarkBuilder"},
	} {
		beside := ""
		if !strings.HasPrefix(b.name, "limit.") {
			beside = "limit.hl7_scan"
		}
		s.add(b.name, "ns/msg", cmd, beside, hl7[b.bench+" ns/op"])
		s.add(b.name+".allocs", "allocs/msg", cmd, "", hl7[b.bench+" allocs/op"])
	}
	s.logf("go test benchmarks: stages (runner and Kafka limit on kfake in memory)")
	st, cmd, err := goBench("./stages", "^Benchmark(KafkaLimit|RunnerCopy)$", s.runs)
	if err != nil {
		return err
	}
	s.add("limit.kafka_produce", "records/s", cmd, "", st["BenchmarkKafkaLimit records/s"])
	s.add("limit.runner_copy", "records/s", cmd, "limit.kafka_produce", st["BenchmarkRunnerCopy/MaxRecords=500 records/s"])
	s.add("limit.runner_copy.max_records_100", "records/s", cmd, "limit.kafka_produce", st["BenchmarkRunnerCopy/MaxRecords=100 records/s"])
	return nil
}

// pipelineCeiling is the end-to-end rate the pipeline could reach if each
// record its transactional stages write cost no more than one record of
// the bare copy loop: validate and normalise write one record a message,
// route two a destination (the routed copy and its outcome) and deliver
// one a destination (the delivery outcome), so the copy loop's rate
// divided by those records is the ceiling on this broker, before any HL7,
// Avro, CEL or delivery work. It is derived from limit.runner_copy, run by
// run.
func (s *suite) pipelineCeiling(mix *bench.Mix, n int) {
	cp := s.fig("limit.runner_copy")
	if cp == nil || n == 0 {
		return
	}
	perMsg := 2 + 3*float64(mix.Deliveries(0, n))/float64(n)
	var samples []float64
	for _, v := range cp.Samples {
		samples = append(samples, v/perMsg)
	}
	s.add("limit.pipeline_copy", "msgs/s", fmt.Sprintf("limit.runner_copy ÷ %.2f records written in transactions per message (validate 1, normalise 1, route 2 and deliver 1 per destination; demo mix)", perMsg), "limit.runner_copy", samples)
}

func (s *suite) ratiosAll() {
	s.addRatio("parse ÷ scan (ADT 2 KB, 4 fields read)", "the parser's cost over one pass finding every segment and field boundary (issue 4's scan limit)", "hl7v2.parse.adt_2kb", "limit.hl7_scan")
	s.addRatio("parse only ÷ scan (ADT 2 KB)", "indexing segments alone; fields are found on demand", "hl7v2.parse.adt_2kb_only", "limit.hl7_scan")
	s.addRatio("parse ÷ segment-only scan (ADT 2 KB, 4 fields read)", "against the weaker floor that finds segment boundaries only", "hl7v2.parse.adt_2kb", "limit.hl7_scan_segments")
	s.addRatio("runner copy ÷ Kafka produce", "what the transactional loop keeps of the broker's ceiling", "limit.runner_copy", "limit.kafka_produce")
	for _, c := range []string{"1", "8"} {
		s.addRatio("ingest ÷ MLLP echo, "+c+" conn", "what parsing, Avro and the durable write cost on top of the bare round trip", "ingest.conns_"+c+".rate", "limit.mllp_echo.conns_"+c)
		s.addRatio("ingest ÷ Kafka awaited writes, "+c+" conn", "ingest beside the broker taking one awaited write per writer", "ingest.conns_"+c+".rate", "limit.kafka_awaited.conns_"+c)
	}
	s.addRatio("ingest ack: validated ÷ ack: commit (8 conns)", "what answering after the accept rules costs beside answering once stored", "ingest.conns_8.rate", "ingest.ack_commit.conns_8.rate")
	s.addRatio("FHIR creates ÷ HL7 v2 ingest (1 conn)", "a FHIR create (validated by google/fhir, two Kafka writes) beside an MLLP message (parsed, one write), both answered once stored", "ingest.fhir_creates.conns_1.rate", "ingest.conns_1.rate")
	s.addRatio("FHIR creates ÷ HL7 v2 ingest (8 conns)", "the same over 8 connections", "ingest.fhir_creates.conns_8.rate", "ingest.conns_8.rate")
	s.addRatio("FHIR creates ÷ HL7 v2 ingest, `careflow run` as its own process", "as users run it: both against one engine process, every stage running behind ingest", "process.fhir_creates.rate", "process.hl7v2_ingest.rate")
	s.addRatio("end to end ÷ ingest (8 conns)", "how much of ingest's rate the whole pipeline sustains", "e2e.one_process.rate", "ingest.conns_8.rate")
	small, large := backlogKey(s.sz.backlogSmall), backlogKey(s.sz.backlogLarge)
	s.addRatio(drainRatio(s.sz), "lab deliveries per second draining a backlog, beside messages per second end to end (one lab delivery each)", large+"drain_rate", "e2e.one_process.rate")
	s.addRatio(engineFlatRatio(s.sz), "the engine's process alone (`careflow run`, every stage); 1.0 would be flat; the broker is beside it, in the next line", large+"engine_peak_rss", small+"engine_peak_rss")
	s.addRatio(fmt.Sprintf("broker host peak RSS, backlog %s ÷ %s", backlogName(s.sz.backlogLarge), backlogName(s.sz.backlogSmall)),
		"the process beside the engine that hosts the embedded broker (kfake keeps its log in memory: the backlog lives here), stand-ins and load generator", large+"broker_peak_rss", small+"broker_peak_rss")
	s.addRatio("stage per process ÷ one process", "what running each stage as its own process costs on the same two cores", "e2e.processes.copies_1.rate", "e2e.one_process.rate")
	s.addRatio("two copies ÷ one copy (stage per process)", "scaling by copies on two cores", "e2e.processes.copies_2.rate", "e2e.processes.copies_1.rate")
	s.addRatio("end to end ÷ runner copy", "the pipeline (4 transactional stages + ingest + delivery) beside one bare copy loop", "e2e.one_process.rate", "limit.runner_copy")
	s.addRatio("end to end ÷ pipeline copy ceiling", "the pipeline beside the same stages doing nothing but copy records (limit.pipeline_copy)", "e2e.one_process.rate", "limit.pipeline_copy")
}
