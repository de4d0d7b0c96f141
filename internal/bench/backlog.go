package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/careflow-health/careflow/internal/load"
)

// BacklogResult is one backlog measurement. Memory is in MiB.
type BacklogResult struct {
	Messages  int     // sent while the lab was down
	DrainRate float64 // lab deliveries per second once it was back, first to last
	// The engine's process (`careflow run`, every stage) alone: its
	// resident memory once it listens, before the first message, and its
	// peak over the whole run (the kernel's high-water mark, VmHWM, read
	// before it is stopped; at least the largest VmRSS sampled every 20 ms).
	EngineRSSBeforeMiB, EnginePeakRSSMiB float64
	// The engine's peak before the lab came back: the outage alone,
	// without the drain.
	EngineOutagePeakRSSMiB float64
	// The peak of the process that ran the measurement and hosts the
	// embedded broker (which keeps its log in memory, so the backlog is
	// here), the schema registry, the stand-in destinations and the load
	// generator.
	BrokerPeakRSSMiB float64
	EnginePID        int // so a caller can tell the engine from itself
}

// backlogBreaker is the demo lab's breaker setting, shortened so that the
// lab is tried again soon after it comes back.
const backlogBreaker, backlogBreakerBench = "open_for: 30s", "open_for: 500ms"

// Backlog runs the engine (binary, `careflow run`) as its own process
// against the embedded broker and a schema registry in this one, with the
// lab destination down while n messages arrive (the other destinations
// keep receiving theirs), then starts the lab and measures how fast the
// backlog drains, and the engine's resident memory throughout beside this
// process's.
func Backlog(ctx context.Context, binary, cfgPath, examples, dataDir string, n int) (out BacklogResult, err error) {
	mix, err := LoadMix(examples)
	if err != nil {
		return BacklogResult{}, err
	}
	est, err := startOutside(cfgPath, dataDir, "lab", func(yaml string) (string, error) {
		if strings.Count(yaml, backlogBreaker) != 1 {
			return "", fmt.Errorf("backlog: %s should set the lab's breaker with %q once; update bench.backlogBreaker", cfgPath, backlogBreaker)
		}
		return strings.Replace(yaml, backlogBreaker, backlogBreakerBench, 1), nil
	})
	if err != nil {
		return BacklogResult{}, err
	}
	defer est.Close()
	logName := filepath.Join(dataDir, "engine.log")
	logFile, err := os.Create(logName)
	if err != nil {
		return BacklogResult{}, err
	}
	defer logFile.Close()
	cmd := exec.Command(binary, "run", "--config", est.Config, "--brokers", est.Brokers,
		"--schema-registry", est.Registry, "--data", filepath.Join(dataDir, "engine"), "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return BacklogResult{}, fmt.Errorf("backlog: start the engine: %w", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopProcesses([]*exec.Cmd{cmd})
		}
	}
	defer stop()
	defer func() {
		// The data directory, log included, is usually removed after a
		// failed run: keep what the engine said.
		if err != nil {
			log, _ := os.ReadFile(logName)
			err = fmt.Errorf("%w\nthe engine's log ends:\n%s", err, log[max(0, len(log)-4096):])
		}
	}()
	pid := cmd.Process.Pid
	if err := waitListening(ctx, est.EHR, 60*time.Second, logName); err != nil {
		return BacklogResult{}, err
	}
	before, _ := procMemMiB(pid)
	out = BacklogResult{Messages: n, EnginePID: pid, EngineRSSBeforeMiB: before.RSS}
	peak := before.RSS
	var mu sync.Mutex
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-sctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			m, _ := procMemMiB(pid)
			mu.Lock()
			peak = max(peak, m.RSS)
			mu.Unlock()
		}
	})
	defer func() { stopSampling(); wg.Wait() }()

	res, err := load.Run(ctx, load.Config{Addr: est.EHR, Count: n, Connections: 8,
		Message: func(seq int) []byte { return mix.Message("B", seq) }})
	if err == nil && res.AA != n {
		err = fmt.Errorf("backlog: ingest accepted %d of %d", res.AA, n)
	}
	if err != nil {
		return out, err
	}
	// Everything else is delivered once the portal has its share; the
	// lab's share then waits in careflow.out.lab.
	portal := mix.ToPortal(0, n)
	if err := est.waitFor(ctx, "portal", portal, time.Minute); err != nil {
		return out, err
	}
	if m, err := procMemMiB(pid); err == nil {
		mu.Lock()
		out.EngineOutagePeakRSSMiB = max(peak, m.RSS, m.HWM)
		mu.Unlock()
	}
	if err := est.StartDown("lab"); err != nil {
		return out, err
	}
	if err := est.waitFor(ctx, "lab", n, time.Minute); err != nil {
		return out, err
	}
	arr := est.Arrivals()
	first, last := time.Time{}, time.Time{}
	for _, at := range arr {
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if d := last.Sub(first); d > 0 {
		out.DrainRate = float64(len(arr)) / d.Seconds()
	}
	stopSampling()
	wg.Wait()
	// The high-water mark is gone with the process: read it first.
	end, err := procMemMiB(pid)
	if err != nil {
		return out, fmt.Errorf("backlog: read the engine's memory: %w", err)
	}
	out.EnginePeakRSSMiB = max(peak, end.RSS, end.HWM)
	stop()
	self, _ := procMemMiB(os.Getpid())
	out.BrokerPeakRSSMiB = self.HWM
	return out, nil
}

// waitFor polls until dest has acknowledged want deliveries. It gives up
// when no delivery arrived for stall: a backlog of any size may take its
// time, as long as it moves.
func (e *Estate) waitFor(ctx context.Context, dest string, want int, stall time.Duration) error {
	last, moved := -1, time.Now()
	for {
		got := e.Delivered()[dest]
		if got >= want {
			return nil
		}
		if got != last {
			last, moved = got, time.Now()
		}
		if time.Since(moved) > stall {
			return fmt.Errorf("backlog: %s has %d of %d deliveries and none for %s", dest, got, want, stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// procMem is a process's resident memory in MiB: now (VmRSS) and its peak
// so far (VmHWM).
type procMem struct{ RSS, HWM float64 }

// procMemMiB reads procMem of pid from /proc; an error where /proc is not
// available or the process is gone.
func procMemMiB(pid int) (procMem, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return procMem{}, err
	}
	defer f.Close()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, _ := strings.Cut(sc.Text(), ":")
		var dst *float64
		switch key {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		default:
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
		if err != nil {
			return m, fmt.Errorf("read %s: %s: %w", f.Name(), key, err)
		}
		*dst = float64(kb) / 1024
	}
	return m, sc.Err()
}
