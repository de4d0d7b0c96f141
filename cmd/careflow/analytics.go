package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/config"
)

// Where sla and trace look when neither --config, --dsn nor
// $CAREFLOW_CONFIG says: the configuration `make run` writes (the demo's,
// with its local ClickHouse), and failing that the DSN that ClickHouse
// listens on. Variables so that tests can point them elsewhere.
var (
	demoConfig = "data/careflow-demo.yaml"
	demoDSN    = "clickhouse://127.0.0.1:9000/careflow"
)

// openAnalytics connects to the ClickHouse that sla and trace read, and
// returns the configuration it came from (nil when only a DSN was given or
// found). In order: --dsn, the configuration (--config, else
// $CAREFLOW_CONFIG, else make run's demoConfig), else demoDSN. An
// unreachable server is an error that says which one was tried and why.
func openAnalytics(ctx context.Context, cfgPath, dsn string) (*config.Config, *analytics.Store, error) {
	from := "--dsn"
	if cfgPath == "" {
		cfgPath = os.Getenv(configEnv)
	}
	if cfgPath == "" && dsn == "" {
		if _, err := os.Stat(demoConfig); err == nil {
			cfgPath = demoConfig
		} else {
			dsn, from = demoDSN, "the local demo's default (no --config, --dsn or "+configEnv+")"
		}
	}
	var cfg *config.Config
	if cfgPath != "" {
		var err error
		if cfg, err = loadConfig(cfgPath); err != nil {
			return nil, nil, err
		}
		if dsn == "" {
			dsn, from = cfg.Analytics.ClickHouse.DSN, "analytics.clickhouse.dsn in "+cfg.Path
		}
	}
	if dsn == "" {
		return nil, nil, usageError{"no ClickHouse: set analytics.clickhouse.dsn in " + cfg.Path + " or give --dsn"}
	}
	st, err := analytics.Open(ctx, dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("no ClickHouse to read (%s): %w; start one with `make run`, or give --config or --dsn", from, err)
	}
	return cfg, st, nil
}

// cmdSLA prints SLA figures per interface and destination from ClickHouse.
func cmdSLA(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sla", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration `FILE` (its ClickHouse and SLAs)")
	dsn := fs.String("dsn", "", "ClickHouse `DSN` (default: analytics.clickhouse.dsn of the config)")
	since := fs.Duration("since", time.Hour, "report on the last `DURATION`")
	iface := fs.String("interface", "", "only this inbound `interface`")
	dest := fs.String("destination", "", "only this `destination`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"sla takes no arguments, only flags"}
	}
	if *since <= 0 {
		return usageError{"--since must be more than 0"}
	}
	cfg, st, err := openAnalytics(ctx, *cfgPath, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	targets := analytics.Targets{}
	if cfg != nil {
		for _, d := range cfg.Destinations {
			targets[d.Name] = d.SLA
		}
	}
	now := time.Now()
	rows, err := st.SLA(ctx, analytics.Filter{Since: now.Add(-*since), Interface: *iface, Destination: *dest}, targets, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "careflow sla: last %s, ingest to acknowledged delivery, from %s\n\n", *since, st.Database())
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no messages in that window")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INTERFACE\tDESTINATION\tMESSAGES\tDELIVERED\tP50\tP95\tP99\tFAILED %\tREJECTED %\tBACKLOG\tSLA\tBREACHES\t")
	for _, r := range rows {
		d, sla := r.Destination, "-"
		if d == "" {
			d = "(before routing)"
		} else if t, ok := targets[d]; ok && t > 0 {
			sla = t.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%.1f\t%.1f\t%d\t%s\t%d\t\n", r.Interface, d, r.Messages, r.Delivered,
			dur(r.P50, r.Delivered), dur(r.P95, r.Delivered), dur(r.P99, r.Delivered),
			r.FailurePct(), r.RejectionPct(), r.Backlog, sla, r.Breaches)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nSLA is the destination's; a route's own sla applies to the messages it took. Breaches: delivered late, or pending longer than the SLA.")
	return nil
}

func dur(d time.Duration, n uint64) string {
	if n == 0 {
		return "-"
	}
	return d.String()
}

// cmdTrace prints one message's journey, stage by stage, with timings.
func cmdTrace(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration `FILE` (its ClickHouse)")
	dsn := fs.String("dsn", "", "ClickHouse `DSN` (default: analytics.clickhouse.dsn of the config)")
	// The id comes first in the usage line; accept it before or after
	// the flags.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 || id == "" {
		return usageError{"trace takes one MESSAGE_ID (or correlation id)"}
	}
	_, st, err := openAnalytics(ctx, *cfgPath, *dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	steps, err := st.Trace(ctx, id)
	if errors.Is(err, analytics.ErrNoRows) {
		return fmt.Errorf("message %s: not in ClickHouse %s (is the sink running, and the id right?)", id, st.Database())
	}
	if err != nil {
		return err
	}
	printTrace(stdout, steps)
	return nil
}

func printTrace(w io.Writer, steps []analytics.Step) {
	first := steps[0].Transition
	var ingest, event time.Time
	for _, s := range steps {
		if ingest.IsZero() {
			ingest = s.IngestTime
		}
		if event.IsZero() {
			event = s.EventTime
		}
	}
	fmt.Fprintf(w, "message %s  correlation %s  interface %s  type %s^%s\n", first.MessageID, first.CorrelationID,
		first.Interface, first.MessageType, first.TriggerEvent)
	if !ingest.IsZero() {
		fmt.Fprintf(w, "ingested %s", ingest.Format(time.RFC3339Nano))
		if !event.IsZero() {
			fmt.Fprintf(w, "  (event time %s)", event.Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\t+SINCE INGEST\tSTAGE\tSTATUS\tDESTINATION\tDETAIL")
	for _, s := range steps {
		since := "-"
		if !ingest.IsZero() && !s.StageTime.IsZero() {
			since = "+" + s.StageTime.Sub(ingest).String()
		}
		var detail []string
		if s.Attempt > 0 {
			detail = append(detail, fmt.Sprintf("attempt %d", s.Attempt))
		}
		if s.AckCode != "" {
			detail = append(detail, "ack "+s.AckCode)
		}
		if s.HTTPStatus != 0 {
			detail = append(detail, fmt.Sprintf("http %d", s.HTTPStatus))
		}
		if s.Latency > 0 {
			detail = append(detail, "round trip "+s.Latency.String())
		}
		if s.ErrorCode != "" {
			e := "error " + s.ErrorCode
			if s.ErrorLocation != "" {
				e += " at " + s.ErrorLocation
			}
			detail = append(detail, e)
		}
		if s.ErrorText != "" {
			detail = append(detail, s.ErrorText)
		}
		d := s.Destination
		if d == "" {
			d = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.StageTime.Format("15:04:05.000"), since, s.Stage, s.Status, d, strings.Join(detail, ", "))
	}
	tw.Flush()
}
