package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"careflow/bench/load"
)

// BacklogResult is one backlog measurement.
type BacklogResult struct {
	Messages  int     // sent while the lab was down
	DrainRate float64 // lab deliveries per second once it was back, first to last
	// Resident memory of the whole process (engine, embedded broker, load
	// generator and stand-ins), in MiB: before the outage, and the peak
	// during the outage and the drain.
	RSSBeforeMiB, PeakRSSMiB float64
}

// Backlog runs every stage in one process with the lab destination down
// while n messages arrive (the other destinations keep receiving theirs),
// then starts the lab and measures how fast the backlog drains, and the
// process's resident memory throughout.
func Backlog(ctx context.Context, cfgPath, examples, dataDir string, n int) (BacklogResult, error) {
	mix, err := LoadMix(examples)
	if err != nil {
		return BacklogResult{}, err
	}
	est, err := StartEstate(ctx, EstateOptions{Config: cfgPath, DataDir: dataDir, Down: "lab"})
	if err != nil {
		return BacklogResult{}, err
	}
	defer est.Close()
	out := BacklogResult{Messages: n, RSSBeforeMiB: rssMiB()}
	peak := out.RSSBeforeMiB
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
			r := rssMiB()
			mu.Lock()
			peak = max(peak, r)
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
	portal := mix.Deliveries(0, n) - n
	if err := est.waitFor(ctx, "portal", portal, 3*time.Minute); err != nil {
		return out, err
	}
	if err := est.StartDown("lab"); err != nil {
		return out, err
	}
	if err := est.waitFor(ctx, "lab", n, 3*time.Minute); err != nil {
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
	out.PeakRSSMiB = max(peak, rssMiB())
	return out, nil
}

// waitFor polls until dest has acknowledged want deliveries.
func (e *Estate) waitFor(ctx context.Context, dest string, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got := e.Delivered()[dest]
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backlog: %s has %d of %d deliveries after %s", dest, got, want, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// rssMiB is this process's resident set size (VmRSS), 0 where /proc is
// not available.
func rssMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
