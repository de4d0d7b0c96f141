package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages/review"
)

// reviewLine is one item as `careflow review list --json` prints it.
type reviewLine struct {
	avro.Review
	HeldAt    string `json:"held_at"`
	DecidedAt string `json:"decided_at,omitempty"`
}

func lineOf(x *avro.Review) reviewLine {
	l := reviewLine{Review: *x, HeldAt: x.HeldAt.UTC().Format(time.RFC3339Nano)}
	if !x.DecidedAt.IsZero() {
		l.DecidedAt = x.DecidedAt.UTC().Format(time.RFC3339Nano)
	}
	return l
}

const reviewUsage = `usage:
  careflow review list [--all] [--json]
  careflow review show ID [--json] [--message]
  careflow review approve ID
  careflow review reject ID --reason TEXT`

// cmdReview is the review queue: what careflow held for a person.
func cmdReview(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{reviewUsage}
	}
	fs := flag.NewFlagSet("review "+args[0], flag.ContinueOnError)
	conn := addToolConn(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "list: decided items too, not only pending ones")
	withMessage := fs.Bool("message", false, "show: print the held HL7 message (patient data: for the person deciding)")
	reason := fs.String("reason", "", "reject (required), approve (optional): why, recorded with the decision")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	verb := args[0]
	switch {
	case verb == "list" && len(pos) != 0, verb != "list" && len(pos) != 1:
		return usageError{reviewUsage}
	case verb != "list" && verb != "show" && verb != "approve" && verb != "reject":
		return usageError{fmt.Sprintf("unknown review command %q\n%s", verb, reviewUsage)}
	}
	cfg, opts, err := conn.kafka()
	if err != nil {
		return err
	}
	serde, err := conn.serde(ctx, cfg)
	if err != nil {
		return err
	}
	if verb == "approve" || verb == "reject" {
		x, err := review.Decide(ctx, opts, serde, review.Decision{ID: pos[0], Approve: verb == "approve", By: operator(), Reason: *reason, At: time.Now()})
		switch {
		case errors.Is(err, review.ErrNoReason):
			return usageError{"reject needs --reason TEXT: the reason is recorded with the decision"}
		case err != nil:
			return err
		}
		what := "nothing is sent"
		if x.Status == avro.ReviewApproved {
			what = "the message continues through " + x.Stage + ", once"
		}
		fmt.Fprintf(stdout, "%s %s by %s; %s\n", x.ReviewID, x.Status, x.DecidedBy, what)
		return nil
	}
	q, err := review.Read(ctx, opts, serde)
	if err != nil {
		return err
	}
	if verb == "show" {
		x, ok := q.Items[pos[0]]
		if !ok {
			return fmt.Errorf("review %s: %w (careflow review list shows the pending ones)", pos[0], review.ErrNotFound)
		}
		return showReview(ctx, stdout, serde, x, *asJSON, *withMessage)
	}
	status := avro.ReviewPending
	if *all {
		status = ""
	}
	items := q.List(status)
	if *asJSON {
		lines := make([]reviewLine, 0, len(items))
		for _, x := range items {
			lines = append(lines, lineOf(x))
		}
		return printJSON(stdout, lines)
	}
	if len(items) == 0 {
		fmt.Fprintln(stdout, "nothing waits for review")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHELD\tSTATUS\tCODE\tINTERFACE\tMESSAGE TYPE\tLOCATION\tREASON")
	for _, x := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.ReviewID, x.HeldAt.Local().Format(time.DateTime), x.Status, x.Code,
			x.Interface, x.MessageType, dash(x.Location), x.Reason)
	}
	return tw.Flush()
}

func showReview(ctx context.Context, w io.Writer, serde *avro.Serde, x *avro.Review, asJSON, withMessage bool) error {
	var msg string
	if withMessage {
		var raw avro.RawMessage
		if err := serde.DecodeContext(ctx, x.HeldValue, &raw); err != nil {
			return fmt.Errorf("review %s: the held record: %w", x.ReviewID, err)
		}
		payload, _, err := hl7v2.DecodeMessage(raw.Payload, raw.Charset, "")
		if err != nil {
			payload = raw.Payload
		}
		msg = strings.ReplaceAll(strings.TrimRight(string(payload), "\r\n"), "\r", "\n")
	}
	if asJSON {
		v := struct {
			reviewLine
			Message string `json:"message,omitempty"`
		}{lineOf(x), msg}
		return printJSON(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"review", x.ReviewID}, {"status", x.Status}, {"code", x.Code}, {"reason", x.Reason}, {"location", dash(x.Location)},
		{"held by", x.Stage}, {"held at", x.HeldAt.Local().Format(time.DateTime)},
		{"interface", x.Interface}, {"message type", x.MessageType}, {"message id", x.MessageID},
		{"control id", x.ControlID}, {"correlation id", x.CorrelationID}, {"patient key", x.PatientKey},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	if x.Status != avro.ReviewPending {
		fmt.Fprintf(tw, "decided by\t%s\ndecided at\t%s\ndecision reason\t%s\n", x.DecidedBy, x.DecidedAt.Local().Format(time.DateTime), dash(x.DecisionReason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if msg != "" {
		fmt.Fprintf(w, "\n%s\n", msg)
	}
	return nil
}

// operator is who is deciding: the operating-system user running the
// command, as the audit of a decision records it.
func operator() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if s := os.Getenv("USER"); s != "" {
		return s
	}
	return "unknown"
}
