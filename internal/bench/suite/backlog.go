package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/careflow-health/careflow/internal/bench"
)

var backlogBinary = flag.String("backlog-binary", "", "internal: the careflow `BINARY` the backlog child runs (default: built from this checkout)")

// backlogChild is the suite re-run as a child process for one backlog
// measurement: it hosts the embedded broker, the registry, the stand-ins
// and the load generator, and starts the engine as a process of its own,
// so that each figure is one process's memory in this run alone (the Go
// runtime keeps memory from earlier measurements in the suite's own
// process). It prints the result as JSON.
func backlogChild(ctx context.Context, n int) error {
	res, err := withDir(func(dir string) (bench.BacklogResult, error) {
		binary := *backlogBinary
		if binary == "" {
			binary = filepath.Join(dir, "careflow")
			if out, err := exec.Command("go", "build", "-o", binary, "./cmd/careflow").CombinedOutput(); err != nil {
				return bench.BacklogResult{}, fmt.Errorf("build careflow for the backlog run: %w\n%s", err, out)
			}
		}
		return bench.Backlog(ctx, binary, demoConfig, examples, dir, n)
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// backlog runs one backlog measurement of n messages in a child process,
// whose engine is binary.
func (s *suite) backlog(ctx context.Context, binary string, n int) (bench.BacklogResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return bench.BacklogResult{}, err
	}
	cmd := exec.CommandContext(ctx, exe, "-backlog-child", strconv.Itoa(n), "-backlog-binary", binary)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return bench.BacklogResult{}, fmt.Errorf("backlog of %d messages: %w", n, err)
	}
	var res bench.BacklogResult
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("backlog of %d messages: read result: %w", n, err)
	}
	return res, nil
}

// backlogKey prefixes the figures of a backlog of n messages.
func backlogKey(n int) string {
	if n < 1000 {
		return fmt.Sprintf("backlog.%d.", n)
	}
	return fmt.Sprintf("backlog.%dk.", n/1000)
}

// backlogName is n as the ratios name it: 100k, or 400 under -quick.
func backlogName(n int) string {
	if n < 1000 {
		return strconv.Itoa(n)
	}
	return fmt.Sprintf("%dk", n/1000)
}
