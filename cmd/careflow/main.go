// Command careflow is the integration engine: one binary, a subcommand per
// job. It only parses flags and wires packages together: the stages live
// in stages/, their assembly into one process in internal/engine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `careflow — a Kafka-native HL7 integration engine

Usage:
  careflow run   --config FILE --data DIR [--brokers a:9092,b:9092] [--schema-registry URL] [--demo]
  careflow stage NAME --config FILE --brokers a:9092 --schema-registry URL [--destination D] [--instance-id ID]
  careflow check FILE
  careflow token new [--name NAME]
  careflow send  --to host:port FILE...
  careflow demo  [--rate N]
  careflow demo token --scope "careflow/apps.write system/Observation.write" [--sub NAME] [--idp host:port]
  careflow sla   [--since 1h] [--interface X] [--destination Y] [--config FILE | --dsn DSN]
  careflow trace MESSAGE_ID [--config FILE | --dsn DSN]
  careflow exceptions [--since 24h] [--code C] [--json] [--config FILE]
  careflow orders [--state S] [--json] [--config FILE]
  careflow patients show IDENTIFIER [--json] [--config FILE]
  careflow review list|show ID|approve ID|reject ID --reason TEXT [--json] [--config FILE]
  careflow dlq list [--stage S] [--code C] [--interface I] [--destination D] [--since 24h] [--all] [--json]
  careflow dlq show ID [--show-patient] [--json]
  careflow dlq replay ID...|--stage S|--code C|--interface I|--destination D|--since 24h --reason TEXT [--again] [--dry-run]
  careflow codes unmapped [--since 24h] [--json] [--config FILE]
  careflow users add --file FILE --name NAME --role viewer|operator|admin  (password on stdin)
  careflow load  --rate N --duration D --to host:port --corpus DIR [--connections C]

Stages: ingest, validate, normalise, route, deliver, sink (analytics).
Run 'careflow COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "stage":
		err = cmdStage(ctx, args[1:], stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "token":
		err = cmdToken(args[1:], stdout)
	case "send":
		err = cmdSend(ctx, args[1:], stdout)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "sla":
		err = cmdSLA(ctx, args[1:], stdout)
	case "trace":
		err = cmdTrace(ctx, args[1:], stdout)
	case "exceptions":
		err = cmdExceptions(ctx, args[1:], stdout)
	case "codes":
		err = cmdCodes(ctx, args[1:], stdout)
	case "orders":
		err = cmdOrders(ctx, args[1:], stdout, stderr)
	case "patients":
		err = cmdPatients(ctx, args[1:], stdout)
	case "users":
		err = cmdUsers(args[1:], os.Stdin, stdout)
	case "review":
		err = cmdReview(ctx, args[1:], stdout)
	case "dlq":
		err = cmdDLQ(ctx, args[1:], stdout)
	case "load":
		err = cmdLoad(ctx, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "careflow: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "careflow %s: %v\n", args[0], err)
		return 2
	}
	fmt.Fprintf(stderr, "careflow %s: %v\n", args[0], err)
	return 1
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// newKafkaLogger is the franz-go client's log, nil when off. It is apart
// from --log-level because the client's info is a line per connection and
// rebalance: what an operator chasing a stuck consumer group wants, and
// noise otherwise. The client logs brokers, groups and offsets, never
// record contents.
func newKafkaLogger(w io.Writer, level string) (*slog.Logger, error) {
	if level == "off" || level == "" {
		return nil, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--kafka-log-level %q: want off, debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})).With("component", "kafka-client"), nil
}

// newLoggers is careflow's log and the Kafka client's (nil when off), for
// run and stage.
func newLoggers(w io.Writer, level, kafkaLevel string) (log, kafka *slog.Logger, err error) {
	if log, err = newLogger(w, level); err != nil {
		return nil, nil, err
	}
	if kafka, err = newKafkaLogger(w, kafkaLevel); err != nil {
		return nil, nil, err
	}
	return log, kafka, nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
