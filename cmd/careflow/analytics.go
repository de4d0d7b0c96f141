package main

import (
	"context"
	"errors"
	"io"
)

// cmdSLA prints SLA figures per interface and destination from ClickHouse.
// (Issue 3 builds it.)
func cmdSLA(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("sla: the ClickHouse sink is not built yet")
}

// cmdTrace prints one message's journey. (Issue 3 builds it.)
func cmdTrace(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("trace: the ClickHouse sink is not built yet")
}
