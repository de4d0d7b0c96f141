package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/demo"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/stages/route"
	"github.com/careflow-health/careflow/topics"
)

// loadConfig reads the configuration at path, or at $CAREFLOW_CONFIG when
// no --config is given.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		path = os.Getenv(configEnv)
	}
	if path == "" {
		return nil, usageError{"--config FILE is required (or set " + configEnv + ")"}
	}
	return config.Load(path, config.WithExprCheck(func(expr string) error {
		_, err := route.Compile(expr)
		return err
	}))
}

// configEnv names the configuration file when a command has no --config.
const configEnv = "CAREFLOW_CONFIG"

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration `FILE`")
	data := fs.String("data", "", "data `DIR` for the embedded broker and schema registry")
	brokers := fs.String("brokers", "", "external Kafka seed brokers, comma separated (default: embedded broker)")
	registry := fs.String("schema-registry", "", "external schema registry `URL` (default: embedded, on the admin port)")
	withDemo := fs.Bool("demo", false, "also run the simulated hospital systems of examples/demo")
	instance := fs.String("instance-id", "", "unique name of this copy (default: host name)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	kafkaLevel := fs.String("kafka-log-level", "off", "the Kafka client's own log: off, debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, klog, err := newLoggers(stderr, *level, *kafkaLevel)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var idp *demo.IdP
	if *withDemo {
		if err := demoConsoleUsers(cfg, *data, stdout); err != nil {
			return err
		}
		// The engine fetches its JWT issuers' keys as it starts: the
		// demo's identity provider must be serving them by then.
		if idp, err = demo.StartIdP(ctx, demoIdPAddr(cfg)); err != nil {
			return err
		}
		defer idp.Close()
	}
	eng, err := engine.Start(ctx, engine.Options{
		Config: cfg, DataDir: *data, Brokers: splitList(*brokers), SchemaRegistry: *registry,
		InstanceID: *instance, Logger: log, KafkaLogger: klog,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "careflow running: kafka %s, admin http://%s (metrics, health, schema registry), http ingest %s\n",
		strings.Join(eng.Brokers(), ","), eng.AdminAddr(), eng.HTTPAddr())
	if cfg.Console.Enabled() {
		fmt.Fprintf(stdout, "console: http://%s/console/\n", eng.AdminAddr())
	}
	if !*withDemo {
		return eng.Wait()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return eng.Wait() })
	g.Go(func() error { return runDemo(gctx, cfg, 2, idp, stdout, log) })
	return g.Wait()
}

func cmdStage(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{"stage NAME is required (ingest, validate, normalise, route, deliver, sink)"}
	}
	name := args[0]
	known := name == topics.StageSink
	for _, s := range topics.Stages {
		known = known || s == name
	}
	if !known {
		return usageError{fmt.Sprintf("unknown stage %q (want ingest, validate, normalise, route, deliver or sink)", name)}
	}
	fs := flag.NewFlagSet("stage", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration `FILE`")
	brokers := fs.String("brokers", "", "Kafka seed brokers, comma separated (default: kafka.brokers of the config)")
	registry := fs.String("schema-registry", "", "schema registry `URL` shared by every copy (required)")
	dests := fs.String("destination", "", "deliver only: the destinations this copy serves, comma separated (default: all)")
	instance := fs.String("instance-id", "", "unique name of this copy (default: host name); copies with the same name fence each other")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	kafkaLevel := fs.String("kafka-log-level", "off", "the Kafka client's own log: off, debug, info, warn, error")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	log, klog, err := newLoggers(stderr, *level, *kafkaLevel)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *brokers == "" && cfg.Kafka.Embedded() {
		return usageError{"stage runs against an external Kafka: give --brokers or kafka.brokers (careflow run starts the embedded one)"}
	}
	if *registry == "" {
		return usageError{"--schema-registry URL is required: every copy must share one registry (careflow run serves one on its admin port)"}
	}
	if name == topics.StageSink && !cfg.Analytics.Enabled() {
		return usageError{"stage sink needs analytics.clickhouse.dsn in the configuration"}
	}
	if name != topics.StageIngest {
		// Only ingest listens; a scaled stage must not fight over ports.
		cfg.HTTP.Listen = ""
	}
	cfg.Admin.Listen = adminForStage(cfg.Admin.Listen)
	eng, err := engine.Start(ctx, engine.Options{
		Config: cfg, Brokers: splitList(*brokers), SchemaRegistry: *registry,
		Stages: []string{name}, Destinations: splitList(*dests), InstanceID: *instance, Logger: log, KafkaLogger: klog,
	})
	if err != nil {
		return err
	}
	return eng.Wait()
}

// adminForStage moves a stage copy's admin endpoint to a free port on the
// same host, so several copies can run side by side.
func adminForStage(listen string) string {
	host := "127.0.0.1"
	if i := strings.LastIndex(listen, ":"); i > 0 {
		host = listen[:i]
	}
	return host + ":0"
}

// cmdCheck validates a configuration: every mistake with its line (exit
// 1), else ok, and then what is allowed but unsafe, as warnings on stderr.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usageError{"check takes one FILE"}
	}
	cfg, err := loadConfig(args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d inbound, %d destinations, %d routes)\n", cfg.Path, len(cfg.Inbound), len(cfg.Destinations), len(cfg.Routes))
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "warning: %s\n", w.Error())
	}
	return nil
}

func cmdSend(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	to := fs.String("to", "", "MLLP `host:port` to send to")
	timeout := fs.Duration("timeout", 30*time.Second, "time to wait for each ACK")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || fs.NArg() == 0 {
		return usageError{"send needs --to host:port and at least one FILE"}
	}
	c := &mllp.Client{Addr: *to, ACKTimeout: *timeout}
	defer c.Close()
	failed := 0
	for _, path := range fs.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		msgs, err := hl7v2.SplitFile(data)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s: no message sent: %v\n", path, err)
		}
		for i, msg := range msgs {
			reply, err := c.Send(ctx, msg)
			if err != nil {
				failed++
				fmt.Fprintf(stdout, "%s #%d: no ACK: %v\n", path, i+1, err)
				continue
			}
			summary := "unreadable ACK"
			if ack, err := hl7v2.ParseACK(reply); err == nil {
				summary = fmt.Sprintf("%s control id %s", ack.Code, ack.ControlID)
				if ack.Code != "AA" && ack.Code != "CA" {
					failed++
				}
			} else {
				failed++
			}
			fmt.Fprintf(stdout, "%s #%d: %s\n%s\n", path, i+1, summary, bytes.ReplaceAll(bytes.TrimRight(reply, "\r\n"), []byte("\r"), []byte("\n")))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d message(s) not accepted", failed)
	}
	return nil
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return cmdDemoToken(ctx, args[1:], stdout)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	cfgPath := fs.String("config", "examples/demo/careflow.yaml", "the engine's configuration `FILE` (for the ports)")
	rate := fs.Float64("rate", 2, "messages per second the simulated EHR sends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, _ := newLogger(stderr, "warn")
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	return runDemo(ctx, cfg, *rate, nil, stdout, log)
}

// runDemo runs the simulated systems on cfg's ports; idp is the identity
// provider cmdRun started before the engine, nil to have the demo start
// its own.
func runDemo(ctx context.Context, cfg *config.Config, rate float64, idp *demo.IdP, stdout io.Writer, log *slog.Logger) error {
	addr := func(name string, inbound bool) string {
		if inbound {
			if in, ok := cfg.InboundByName(name); ok {
				return in.Listen
			}
			return ""
		}
		if d, ok := cfg.Destination(name); ok {
			if d.Address != "" {
				return d.Address
			}
			return hostPortOf(d.URL)
		}
		return ""
	}
	err := demo.Run(ctx, demo.Config{
		EHR: addr("ehr", true), LabResults: addr("lab-results", true),
		Lab: addr("lab", false), EHRResults: addr("ehr-results", false), Portal: addr("portal", false),
		Notifications: addr("ehr-notifications", false),
		FHIRStore:     addr("fhir-store", false),
		IdP:           demoIdPAddr(cfg), IdPServer: idp,
		HTTP: cfg.HTTP.Listen,
		Rate: rate, Out: stdout, Logger: log, Careflow: careflowSummary(cfg),
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func hostPortOf(url string) string {
	s := url
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}
