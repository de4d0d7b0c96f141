package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/careflow-health/careflow/internal/load"
)

// cmdLoad is the open-loop MLLP load generator (careflow/bench/load).
func cmdLoad(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	rate := fs.Float64("rate", 0, "offered messages per second over all connections (0: closed loop, as fast as ACKs return)")
	duration := fs.Duration("duration", 10*time.Second, "how long to offer load")
	count := fs.Int("count", 0, "send exactly this many messages (0: as many as the duration allows)")
	to := fs.String("to", "", "MLLP `host:port` to send to")
	dir := fs.String("corpus", "", "`DIR` of *.hl7 files, sent round robin, each with a fresh MSH-10")
	conns := fs.Int("connections", load.DefaultConnections, "MLLP connections, one message in flight on each")
	timeout := fs.Duration("timeout", load.DefaultACKTimeout, "time to wait for each ACK")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || *dir == "" {
		return usageError{"load needs --to host:port and --corpus DIR"}
	}
	if *duration <= 0 && *count <= 0 {
		return usageError{"load needs a positive --duration or --count"}
	}
	corpus, err := load.LoadCorpus(*dir)
	if err != nil {
		return err
	}
	res, err := load.Run(ctx, load.Config{
		Addr: *to, Rate: *rate, Duration: *duration, Count: *count,
		Connections: *conns, ACKTimeout: *timeout, Corpus: corpus,
	})
	fmt.Fprint(stdout, res.String())
	if err != nil {
		return err
	}
	if failed := res.Sent - res.AA; failed > 0 {
		return fmt.Errorf("%d of %d messages not accepted (AE, AR, timeout or error)", failed, res.Sent)
	}
	return nil
}
