package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// exceptionLine is one exception as `careflow exceptions --json` prints it:
// the Avro record's fields, with at as RFC 3339.
type exceptionLine struct {
	avro.Exception
	At string `json:"at"`
}

// cmdExceptions lists careflow.exceptions, read from Kafka itself: no
// ClickHouse needed, so it works wherever the engine does.
func cmdExceptions(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("exceptions", flag.ContinueOnError)
	conn := addToolConn(fs)
	since := fs.Duration("since", 24*time.Hour, "exceptions raised in the last `DURATION`")
	code := fs.String("code", "", "only exceptions with this `code` (stale_update, ...)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"exceptions takes no arguments, only flags"}
	}
	if *since <= 0 {
		return usageError{"--since must be more than 0"}
	}
	cfg, opts, err := conn.kafka()
	if err != nil {
		return err
	}
	serde, err := conn.serde(ctx, cfg)
	if err != nil {
		return err
	}
	var out []avro.Exception
	from := time.Now().Add(-*since)
	err = readExceptions(ctx, opts, *conn.brokers, serde, kgo.NewOffset().AfterMilli(from.UnixMilli()), func(x avro.Exception) error {
		if (*code == "" || x.Code == *code) && !x.At.Before(from) {
			out = append(out, x)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortStableFunc(out, func(a, b avro.Exception) int { return a.At.Compare(b.At) })
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, x := range out {
			if err := enc.Encode(exceptionLine{Exception: x, At: x.At.UTC().Format(time.RFC3339Nano)}); err != nil {
				return err
			}
		}
		return nil
	}
	if len(out) == 0 {
		fmt.Fprintf(stdout, "no exceptions in the last %s\n", *since)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tCODE\tINTERFACE\tMESSAGE\tCONTROL ID\tORDER\tACTION\tREASON")
	for _, x := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.At.Local().Format("2006-01-02 15:04:05"), x.Code, x.Interface,
			x.MessageID, x.ControlID, dash(x.PlacerOrder), x.Action, x.Reason)
	}
	return tw.Flush()
}

// readExceptions hands fn every careflow.exceptions record from start to
// the end the topic has now, decoded; a record that does not decode is an
// error naming its partition and offset.
func readExceptions(ctx context.Context, opts []kgo.Opt, brokers string, serde *avro.Serde, start kgo.Offset, fn func(avro.Exception) error) error {
	return readAll(ctx, opts, brokers, topics.Exceptions, start, func(r *kgo.Record) error {
		var x avro.Exception
		if err := serde.DecodeContext(ctx, r.Value, &x); err != nil {
			return fmt.Errorf("%s partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		return fn(x)
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// toolConfig is the configuration a reading tool uses: --config, else
// $CAREFLOW_CONFIG, else the one make run writes, else the demo's.
func toolConfig(path string) (*config.Config, error) {
	if path == "" && os.Getenv(configEnv) == "" {
		for _, p := range []string{demoConfig, "examples/demo/careflow.yaml"} {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
	}
	return loadConfig(path)
}

// readAll hands fn every committed record of topic from start to the end
// it has now, on every partition.
func readAll(ctx context.Context, opts []kgo.Opt, brokers, topic string, start kgo.Offset, fn func(*kgo.Record) error) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	// Bound the first contact, so a careflow that is not running is an
	// error in seconds; the read itself takes as long as the topic needs.
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ends, err := kadm.NewClient(cl).ListEndOffsets(mctx, topic)
	cancel()
	cl.Close()
	if err != nil {
		return fmt.Errorf("reach Kafka for %s (is careflow running?): %w", topic, err)
	}
	var parts []int32
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			parts = append(parts, o.Partition)
		}
	})
	if len(parts) == 0 {
		return fmt.Errorf("topic %s does not exist on this Kafka%s", topic, strings.TrimSuffix(" ("+brokers+")", " ()"))
	}
	var ferr error
	err = stages.ReadToEnd(ctx, opts, topic, parts, start, func(r *kgo.Record) {
		if ferr == nil {
			ferr = fn(r)
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
