package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"careflow/bench"
)

// backlogChild is the suite re-run as a child process for one backlog
// measurement, so that the resident memory it reports is that run's alone
// (the Go runtime keeps memory from earlier measurements in the suite's
// own process). It prints the result as JSON.
func backlogChild(ctx context.Context, n int) error {
	res, err := withDir(func(dir string) (bench.BacklogResult, error) {
		return bench.Backlog(ctx, demoConfig, examples, dir, n)
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// backlog runs one backlog measurement of n messages in a child process.
func (s *suite) backlog(ctx context.Context, n int) (bench.BacklogResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return bench.BacklogResult{}, err
	}
	cmd := exec.CommandContext(ctx, exe, "-backlog-child", strconv.Itoa(n))
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
