package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/engine"
)

// toolConn is the flags every reading tool shares: where the configuration
// is, and where Kafka and the schema registry are when not as it says.
type toolConn struct {
	cfgPath, brokers, registryURL *string
}

func addToolConn(fs *flag.FlagSet) toolConn {
	return toolConn{
		cfgPath:     fs.String("config", "", "configuration `FILE` (its Kafka and admin port; default $CAREFLOW_CONFIG, else make run's data/careflow-demo.yaml)"),
		brokers:     fs.String("brokers", "", "Kafka seed brokers, comma separated (default: the configuration's)"),
		registryURL: fs.String("schema-registry", "", "schema registry `URL` (default: the configuration's admin port)"),
	}
}

// kafka is the configuration and its Kafka client options.
func (t toolConn) kafka() (*config.Config, []kgo.Opt, error) {
	cfg, err := toolConfig(*t.cfgPath)
	if err != nil {
		return nil, nil, err
	}
	opts, err := engine.KafkaClientOptions(cfg.Kafka, splitList(*t.brokers))
	return cfg, opts, err
}

// serde is a serde over the running engine's registry. Registering what
// the registry already has is a read: no admin token needed.
func (t toolConn) serde(ctx context.Context, cfg *config.Config) (*avro.Serde, error) {
	url := *t.registryURL
	if url == "" {
		url = "http://" + cfg.Admin.Listen
	}
	reg, err := registry.NewRemote(url)
	if err != nil {
		return nil, err
	}
	serde, err := avro.NewSerde(ctx, reg)
	if err != nil {
		return nil, fmt.Errorf("schema registry at %s (is careflow running? else give --schema-registry): %w", url, err)
	}
	return serde, nil
}

// parseInterspersed parses flags wherever they are among the positional
// arguments (`careflow review show R1 --json`), which flag.Parse stops at,
// and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// printJSON writes v as indented JSON: what every tool's --json prints.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
