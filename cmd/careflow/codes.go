package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/normalise"
)

// unmappedCode is one local code no map knew, as `careflow codes unmapped
// --json` prints it: where it came from and how often it was seen.
type unmappedCode struct {
	Interface    string `json:"interface"`
	CodingSystem string `json:"coding_system"`
	Code         string `json:"code"`
	Field        string `json:"field"`
	Count        int    `json:"count"`
	FirstSeen    string `json:"first_seen"` // RFC 3339, UTC
	LastSeen     string `json:"last_seen"`
	// Reason is the latest exception's: which maps, at which versions,
	// did not know the code.
	Reason string `json:"reason"`

	first, last time.Time
}

// cmdCodes runs `careflow codes SUBCOMMAND`.
func cmdCodes(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "unmapped" {
		return usageError{"codes takes a subcommand: unmapped"}
	}
	return cmdCodesUnmapped(ctx, args[1:], stdout)
}

// cmdCodesUnmapped lists the local codes no code map knew (unmapped_code
// on careflow.exceptions), grouped by interface, coding system, code and
// field, newest first: the drift a map's owner has to catch up with.
func cmdCodesUnmapped(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("codes unmapped", flag.ContinueOnError)
	conn := addToolConn(fs)
	since := fs.Duration("since", 24*time.Hour, "codes seen in the last `DURATION`")
	asJSON := fs.Bool("json", false, "a JSON array of objects")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"codes unmapped takes no arguments, only flags"}
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
	type group struct{ iface, system, code, field string }
	groups := map[group]*unmappedCode{}
	counted := map[string]bool{} // by exception id: a replay, or an approved hold, raises it again
	from := time.Now().Add(-*since)
	// From the start: the record timestamp is when the exception was
	// written, which a replay makes later than when it was raised.
	err = readExceptions(ctx, opts, *conn.brokers, serde, kgo.NewOffset().AtStart(), func(x avro.Exception) error {
		if x.Code != normalise.CodeUnmappedCode || x.At.Before(from) || counted[x.ExceptionID] {
			return nil
		}
		counted[x.ExceptionID] = x.ExceptionID != ""
		k := group{x.Interface, x.CodingSystem, x.CodedValue, x.Location}
		g := groups[k]
		if g == nil {
			g = &unmappedCode{Interface: k.iface, CodingSystem: k.system, Code: k.code, Field: k.field, first: x.At, last: x.At}
			groups[k] = g
		}
		g.Count++
		g.first = minTime(g.first, x.At)
		if !x.At.Before(g.last) {
			g.last, g.Reason = x.At, x.Reason
		}
		return nil
	})
	if err != nil {
		return err
	}
	out := make([]unmappedCode, 0, len(groups))
	for _, g := range groups {
		g.FirstSeen, g.LastSeen = g.first.UTC().Format(time.RFC3339Nano), g.last.UTC().Format(time.RFC3339Nano)
		out = append(out, *g)
	}
	// Newest first; ties in a stable order.
	slices.SortFunc(out, func(a, b unmappedCode) int {
		return cmp.Or(b.last.Compare(a.last), cmp.Compare(a.Interface, b.Interface), cmp.Compare(a.CodingSystem, b.CodingSystem),
			cmp.Compare(a.Code, b.Code), cmp.Compare(a.Field, b.Field))
	})
	if *asJSON {
		return printJSON(stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintf(stdout, "no unmapped codes in the last %s\n", *since)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAST SEEN\tINTERFACE\tFIELD\tSYSTEM\tCODE\tCOUNT\tFIRST SEEN")
	for _, g := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", g.last.Local().Format("2006-01-02 15:04:05"), g.Interface, g.Field,
			dash(g.CodingSystem), g.Code, g.Count, g.first.Local().Format("2006-01-02 15:04:05"))
	}
	return tw.Flush()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
