package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/stages/normalise"
	"github.com/careflow-health/careflow/topics"
)

// orderLine is one order as `careflow orders --json` prints it.
type orderLine struct {
	PlacerOrder   string   `json:"placer_order"`
	FillerOrder   string   `json:"filler_order"`
	State         string   `json:"state"`
	UpdatedAt     string   `json:"updated_at"`
	LastMessageID string   `json:"last_message_id"`
	CorrelationID string   `json:"correlation_id"`
	Interface     string   `json:"source_interface"`
	Exceptions    []string `json:"exceptions"` // codes raised about this order
	Late          []string `json:"late"`       // deadlines missed: late_acceptance, late_result
}

// cmdOrders lists the orders careflow tracks, read from the order state
// store (the careflow.state.orders changelog) and careflow.exceptions in
// Kafka: no ClickHouse needed.
func cmdOrders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	conn := addToolConn(fs)
	brokers, registryURL := conn.brokers, conn.registryURL
	state := fs.String("state", "", "only orders in this `state` (placed, accepted, rejected, in_progress, preliminary, final, corrected, cancelled)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	late := fs.Bool("late", false, "only orders past their route's expect: not accepted or not resulted in time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"orders takes no arguments, only flags"}
	}
	now := time.Now()
	if *state != "" && !slices.Contains(orderStates, *state) {
		return usageError{fmt.Sprintf("--state %q: want one of %s", *state, strings.Join(orderStates, ", "))}
	}
	cfg, opts, err := conn.kafka()
	if err != nil {
		return err
	}
	// The changelog keeps the last record per patient: read it all.
	patients := map[string]lifecycle.Patient{}
	err = readAll(ctx, opts, *brokers, topics.OrderState, kgo.NewOffset().AtStart(), func(r *kgo.Record) error {
		if r.Value == nil {
			delete(patients, string(r.Key))
			return nil
		}
		var p lifecycle.Patient
		if err := json.Unmarshal(r.Value, &p); err != nil {
			return fmt.Errorf("%s partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		patients[string(r.Key)] = p
		return nil
	})
	if err != nil {
		return err
	}
	// The orders are JSON and need no registry; the exceptions beside
	// them are Avro. Without the registry or the topic, list the orders
	// and say what is missing.
	excs, err := exceptionsByOrder(ctx, opts, *brokers, *registryURL, "http://"+cfg.Admin.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "careflow orders: exceptions not shown: %v\n", err)
		excs = map[string][]string{}
	}
	var out []orderLine
	for patientKey, p := range patients {
		for _, o := range p.Orders {
			if *state != "" && o.State != *state {
				continue
			}
			lateBy := o.LateAt(now)
			if *late && len(lateBy) == 0 {
				continue
			}
			out = append(out, orderLine{PlacerOrder: o.Placer, FillerOrder: o.Filler, State: o.State,
				UpdatedAt: o.Updated.UTC().Format(time.RFC3339Nano), LastMessageID: o.MessageID, CorrelationID: o.CorrelationID,
				Interface: o.Interface, Exceptions: nonNil(excs[patientKey+"|"+o.Placer]), Late: nonNil(lateBy)})
		}
	}
	slices.SortFunc(out, func(a, b orderLine) int { return strings.Compare(a.UpdatedAt+a.PlacerOrder, b.UpdatedAt+b.PlacerOrder) })
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, o := range out {
			if err := enc.Encode(o); err != nil {
				return err
			}
		}
		return nil
	}
	if len(out) == 0 {
		fmt.Fprintln(stdout, "no orders")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "UPDATED\tPLACER\tFILLER\tSTATE\tLATE\tLAST MESSAGE\tEXCEPTIONS")
	for _, o := range out {
		at, _ := time.Parse(time.RFC3339Nano, o.UpdatedAt)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", at.Local().Format("2006-01-02 15:04:05"), o.PlacerOrder, dash(o.FillerOrder),
			o.State, dash(strings.Join(o.Late, ",")), o.LastMessageID, dash(strings.Join(o.Exceptions, ",")))
	}
	return tw.Flush()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// exceptionsByOrder reads careflow.exceptions and returns, per patient key
// and placer order ("KEY|PLACER": order numbers are unique per patient,
// not across them), the codes raised about it.
func exceptionsByOrder(ctx context.Context, opts []kgo.Opt, brokers, url, defaultURL string) (map[string][]string, error) {
	if url == "" {
		url = defaultURL
	}
	reg, err := registry.NewRemote(url)
	if err != nil {
		return nil, err
	}
	serde, err := avro.NewSerde(ctx, reg)
	if err != nil {
		return nil, fmt.Errorf("schema registry at %s (is careflow running? else give --schema-registry): %w", url, err)
	}
	by := map[string][]string{}
	err = readExceptions(ctx, opts, brokers, serde, kgo.NewOffset().AtStart(), func(x avro.Exception) error {
		k := x.PatientKey + "|" + x.PlacerOrder
		if x.PlacerOrder != "" && !slices.Contains(by[k], x.Code) {
			by[k] = append(by[k], x.Code)
		}
		return nil
	})
	return by, err
}

// careflowSummary is the demo's view of what careflow holds: orders by
// state (from the order state store) and exceptions by code, as summary
// lines. A failure becomes a line too: the demo goes on.
func careflowSummary(cfg *config.Config) func(context.Context) []string {
	var serde *avro.Serde // made once careflow's registry answers
	return func(ctx context.Context) []string {
		opts, err := engine.KafkaClientOptions(cfg.Kafka, nil)
		if err != nil {
			return []string{"careflow: " + err.Error()}
		}
		patients := map[string]lifecycle.Patient{}
		err = readAll(ctx, opts, "", topics.OrderState, kgo.NewOffset().AtStart(), func(r *kgo.Record) error {
			var p lifecycle.Patient
			if r.Value != nil && json.Unmarshal(r.Value, &p) == nil {
				patients[string(r.Key)] = p // the last record per patient is its state
			}
			return nil
		})
		if err != nil {
			return []string{"careflow orders: not read yet"}
		}
		states := map[string]int{}
		for _, p := range patients {
			for _, o := range p.Orders {
				states[o.State]++
			}
		}
		lines := []string{"careflow orders          " + counts(states, orderStates)}
		if serde == nil {
			reg, err := registry.NewRemote("http://" + cfg.Admin.Listen)
			if err == nil {
				serde, _ = avro.NewSerde(ctx, reg)
			}
		}
		if serde == nil {
			return lines
		}
		codes := map[string]int{}
		unmapped := map[string]bool{}
		err = readAll(ctx, opts, "", topics.Exceptions, kgo.NewOffset().AtStart(), func(r *kgo.Record) error {
			var x avro.Exception
			if serde.DecodeContext(ctx, r.Value, &x) == nil {
				codes[x.Code]++
				if x.Code == normalise.CodeUnmappedCode {
					unmapped[x.Interface+"|"+x.CodingSystem+"|"+x.CodedValue] = true
				}
			}
			return nil
		})
		if err == nil {
			lines = append(lines, "careflow exceptions      "+counts(codes, nil))
		}
		return append(lines, identitySummary(ctx, opts, serde, len(unmapped)))
	}
}

// orderStates are the lifecycle's states in their order.
var orderStates = []string{lifecycle.Placed, lifecycle.Sent, lifecycle.Accepted, lifecycle.Rejected, lifecycle.InProgress,
	lifecycle.Preliminary, lifecycle.Final, lifecycle.Corrected, lifecycle.Cancelled}

// counts writes "name n" pairs: the names of order, then any others sorted;
// "none" when there are none.
func counts(m map[string]int, order []string) string {
	var parts []string
	for _, k := range order {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	var rest []string
	for k := range m {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "  ")
}
