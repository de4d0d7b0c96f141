package main

// careflow dlq: the dead letters, read from Kafka, and their replay
// (stages/replay).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages/replay"
)

const dlqUsage = `usage:
  careflow dlq list [--stage S] [--code C] [--interface I] [--destination D] [--since 24h] [--all] [--json]
  careflow dlq show ID [--show-patient] [--json]
  careflow dlq replay ID... --reason TEXT [--again] [--dry-run]
  careflow dlq replay --stage S|--code C|--interface I|--destination D|--since 24h --reason TEXT [--again] [--dry-run]`

// letterLine is one letter as `careflow dlq list|show --json` prints it:
// no patient data (key, value, a destination's own words) unless asked.
type letterLine struct {
	ID                string        `json:"id"`
	Stage             string        `json:"stage"`
	Code              string        `json:"error_code"`
	Location          string        `json:"error_location"`
	Text              string        `json:"error_text"`
	Interface         string        `json:"source_interface"`
	Destination       string        `json:"destination,omitempty"`
	MessageID         string        `json:"message_id"`
	CorrelationID     string        `json:"correlation_id"`
	At                string        `json:"at"`
	OriginalTopic     string        `json:"original_topic,omitempty"`
	OriginalPartition int32         `json:"original_partition"`
	OriginalOffset    int64         `json:"original_offset"`
	Replays           []replay.Mark `json:"replays"`
	Headers           []avro.Header `json:"original_headers,omitempty"`

	// With --show-patient only.
	Key         string `json:"original_key,omitempty"`
	ErrorDetail string `json:"error_detail,omitempty"`
	Value       []byte `json:"original_value,omitempty"`
	Message     string `json:"message,omitempty"`
}

func letterLineOf(l replay.Letter) letterLine {
	line := letterLine{ID: l.ID, Stage: l.Stage, Code: l.Code, Location: l.Location, Text: l.Text, Interface: l.Interface,
		Destination: l.Destination, MessageID: l.MessageID, CorrelationID: l.CorrelationID, At: l.At.UTC().Format(time.RFC3339Nano),
		OriginalTopic: l.OriginalTopic, OriginalPartition: l.OriginalPartition, OriginalOffset: l.OriginalOffset, Replays: l.Replays}
	if line.Replays == nil {
		line.Replays = []replay.Mark{}
	}
	return line
}

// cmdDLQ is the dead letters: what the stages could not process.
func cmdDLQ(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{dlqUsage}
	}
	verb := args[0]
	fs := flag.NewFlagSet("dlq "+verb, flag.ContinueOnError)
	conn := addToolConn(fs)
	stage := fs.String("stage", "", "list, replay: only dead letters of this `stage` (validate, normalise, route, deliver, ingest)")
	code := fs.String("code", "", "list, replay: only dead letters with this error `code`")
	iface := fs.String("interface", "", "list, replay: only dead letters of messages from this inbound `interface`")
	dest := fs.String("destination", "", "list, replay: only dead letters of events routed to this `destination`")
	since := fs.Duration("since", 0, "list, replay: only dead letters of the last `DURATION` (default: all)")
	all := fs.Bool("all", false, "list: replayed dead letters too, not only those waiting")
	asJSON := fs.Bool("json", false, "list, show: print JSON")
	showPatient := fs.Bool("show-patient", false, "show: the original record (key, value) and the destination's own words: patient data")
	reason := fs.String("reason", "", "replay (required): why, recorded with the replay and in careflow.audit (no patient data)")
	again := fs.Bool("again", false, "replay: dead letters already replayed too, once more")
	dryRun := fs.Bool("dry-run", false, "replay: print what would be replayed and refused, and write nothing")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	f := replay.Filter{Stage: *stage, Code: *code, Interface: *iface, Destination: *dest}
	if *since < 0 {
		return usageError{"--since must be more than 0"}
	}
	if *since > 0 {
		f.Since = time.Now().Add(-*since)
	}
	switch {
	case verb != "list" && verb != "show" && verb != "replay":
		return usageError{fmt.Sprintf("unknown dlq command %q\n%s", verb, dlqUsage)}
	case verb == "list" && len(pos) != 0, verb == "show" && len(pos) != 1:
		return usageError{dlqUsage}
	case verb == "replay" && len(pos) > 0 && (*stage != "" || *code != "" || *iface != "" || *dest != "" || *since != 0):
		return usageError{"replay takes ids or filters (--stage, --code, --interface, --destination, --since), not both"}
	}
	cfg, opts, err := conn.kafka()
	if err != nil {
		return err
	}
	serde, err := conn.serde(ctx, cfg)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		f.NotReplayed = !*all
		ls, err := replay.List(ctx, opts, serde, f)
		if err != nil {
			return err
		}
		return listLetters(stdout, ls, *asJSON, *all)
	case "show":
		l, err := replay.Get(ctx, opts, serde, pos[0])
		if err != nil {
			return fmt.Errorf("%w (careflow dlq list shows the waiting ones)", err)
		}
		return showLetter(ctx, stdout, serde, l, *asJSON, *showPatient)
	}
	f.IDs = pos
	// A filter leaves out what was replayed already (the letter of a
	// record that failed again is a new one); an id names a letter, and
	// naming one already replayed is refused, unless --again.
	f.NotReplayed = len(pos) == 0 && !*again
	res, err := replay.Replay(ctx, opts, serde, replay.Request{Filter: f, By: operator(), Reason: *reason, Again: *again,
		DryRun: *dryRun, At: time.Now(), Observer: observer()})
	switch {
	case errors.Is(err, replay.ErrNoReason):
		return usageError{"replay needs --reason TEXT: the reason is recorded with the replay"}
	case errors.Is(err, replay.ErrNoSelection):
		return usageError{"replay needs dead-letter ids or a filter (--stage, --code, --interface, --destination, --since): it never replays everything"}
	case err != nil:
		return err
	}
	return printReplay(stdout, res, *dryRun)
}

func listLetters(w io.Writer, ls []replay.Letter, asJSON, all bool) error {
	if asJSON {
		lines := make([]letterLine, 0, len(ls))
		for _, l := range ls {
			lines = append(lines, letterLineOf(l))
		}
		return printJSON(w, lines)
	}
	if len(ls) == 0 {
		if all {
			fmt.Fprintln(w, "no dead letters")
		} else {
			fmt.Fprintln(w, "no dead letters waiting (--all shows the replayed ones too)")
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tCODE\tLOCATION\tINTERFACE\tDESTINATION\tMESSAGE\tREPLAYED\tREASON")
	for _, l := range ls {
		replayed := "-"
		if n := len(l.Replays); n > 0 {
			replayed = fmt.Sprintf("%s by %s", l.Replays[n-1].At.Local().Format(time.DateTime), l.Replays[n-1].By)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, l.At.Local().Format(time.DateTime), l.Code, dash(l.Location),
			l.Interface, dash(l.Destination), l.MessageID, replayed, l.Text)
	}
	return tw.Flush()
}

func showLetter(ctx context.Context, w io.Writer, serde *avro.Serde, l *replay.Letter, asJSON, showPatient bool) error {
	line := letterLineOf(*l)
	line.Headers = l.Record.OriginalHeaders // careflow's own: ids, interface, times; never patient data
	if showPatient {
		line.Key, line.ErrorDetail, line.Value = string(l.Record.OriginalKey), l.Record.ErrorDetail, l.Record.OriginalValue
		line.Message = readable(ctx, serde, l.Record.OriginalValue)
	}
	if asJSON {
		return printJSON(w, line)
	}
	original := "never on a topic: ingest refused it and answered the sender AR/CR; the sender must correct it and resend"
	if l.OriginalTopic != "" {
		original = fmt.Sprintf("%s partition %d offset %d", l.OriginalTopic, l.OriginalPartition, l.OriginalOffset)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"dead letter", l.ID}, {"stage", l.Stage}, {"at", l.At.Local().Format(time.DateTime)}, {"code", l.Code},
		{"location", dash(l.Location)}, {"reason", l.Text}, {"interface", l.Interface}, {"destination", dash(l.Destination)},
		{"message id", l.MessageID}, {"correlation id", l.CorrelationID}, {"original", original},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	for _, h := range line.Headers {
		fmt.Fprintf(tw, "header\t%s=%s\n", h.Key, h.Value)
	}
	for _, m := range l.Replays {
		again := ""
		if m.Again {
			again = ", again"
		}
		fmt.Fprintf(tw, "replayed\t%s by %s (%s%s) → %s partition %d offset %d\n", m.At.Local().Format(time.DateTime), m.By, m.Reason, again,
			m.Topic, m.Partition, m.Offset)
	}
	if showPatient {
		fmt.Fprintf(tw, "key\t%s\n", line.Key)
		if line.ErrorDetail != "" {
			fmt.Fprintf(tw, "destination said\t%s\n", line.ErrorDetail)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if showPatient {
		fmt.Fprintf(w, "\n%s\n", line.Message)
	}
	return nil
}

// readable is the original value as a person reads it: the HL7 message of
// a RawMessage, the canonical event as JSON, else the bytes quoted.
func readable(ctx context.Context, serde *avro.Serde, value []byte) string {
	var raw avro.RawMessage
	if serde.DecodeContext(ctx, value, &raw) == nil {
		payload, _, err := hl7v2.DecodeMessage(raw.Payload, raw.Charset, "")
		if err != nil {
			payload = raw.Payload
		}
		return strings.ReplaceAll(strings.TrimRight(string(payload), "\r\n"), "\r", "\n")
	}
	var ev avro.ClinicalEvent
	if serde.DecodeContext(ctx, value, &ev) == nil {
		if b, err := json.MarshalIndent(ev, "", "  "); err == nil {
			return string(b)
		}
	}
	return fmt.Sprintf("%q", value)
}

func printReplay(w io.Writer, res replay.Result, dryRun bool) error {
	for _, l := range res.Replayed {
		if dryRun {
			fmt.Fprintf(w, "would replay %s → %s partition %d\n", l.ID, l.OriginalTopic, l.OriginalPartition)
			continue
		}
		m := l.Replays[len(l.Replays)-1]
		fmt.Fprintf(w, "replayed %s → %s partition %d offset %d\n", l.ID, m.Topic, m.Partition, m.Offset)
	}
	for _, r := range res.Refused {
		// The error names the letter too: not twice on a line.
		fmt.Fprintf(w, "refused %s: %s\n", r.Letter.ID, strings.TrimPrefix(r.Err.Error(), "dead letter "+r.Letter.ID+": "))
	}
	if len(res.Replayed)+len(res.Refused) == 0 {
		fmt.Fprintln(w, "no dead letters selected (those already replayed are left out; --again includes them)")
	}
	if len(res.Refused) > 0 {
		return fmt.Errorf("%d of %d dead letters refused", len(res.Refused), len(res.Replayed)+len(res.Refused))
	}
	return nil
}

// observer names this tool in an audit record: the command and the host
// it ran on.
func observer() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown host"
	}
	return "careflow dlq on " + host
}
