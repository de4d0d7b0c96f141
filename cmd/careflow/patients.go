package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/patientindex"
	"github.com/careflow-health/careflow/stages/review"
)

// patientView is one patient as `careflow patients show --json` prints it.
type patientView struct {
	Key         string                         `json:"key"`
	Resolved    string                         `json:"resolved_key"` // the survivor, when Key was merged
	MergedInto  string                         `json:"merged_into,omitempty"`
	Identifiers []patientindex.IdentifierEntry `json:"identifiers"`
	Merged      []string                       `json:"merged"` // patients merged into this one
	Links       []string                       `json:"links"`
	History     []patientindex.Event           `json:"history"`
}

// cmdPatients is `careflow patients show IDENTIFIER`: the patient index,
// read from careflow.patients.
func cmdPatients(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "show" {
		return usageError{"usage: careflow patients show IDENTIFIER [--json] (IDENTIFIER is value^authority, e.g. 9990000018^NHS, or a patient key)"}
	}
	fs := flag.NewFlagSet("patients show", flag.ContinueOnError)
	conn := addToolConn(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"patients show takes one IDENTIFIER (value^authority)"}
	}
	_, opts, err := conn.kafka()
	if err != nil {
		return err
	}
	x, err := patientindex.Snapshot(ctx, opts)
	if err != nil {
		return fmt.Errorf("read the patient index (is careflow running?): %w", err)
	}
	v, err := viewOf(x, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "patient\t%s\n", v.Resolved)
	if v.Key != v.Resolved {
		fmt.Fprintf(tw, "asked for\t%s (merged into %s)\n", v.Key, v.MergedInto)
	}
	fmt.Fprintln(tw, "\nIDENTIFIER\tTYPE\tAUTHORITY\tSOURCE\tFIRST SEEN\tLAST SEEN")
	for _, e := range v.Identifiers {
		for _, s := range e.Sources {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID(), dash(e.Type), dash(e.Authority), s.Interface,
				s.First.Local().Format(time.DateTime), s.Last.Local().Format(time.DateTime))
		}
	}
	if len(v.Merged) > 0 {
		fmt.Fprintf(tw, "\nmerged into it\t%s\n", strings.Join(v.Merged, ", "))
	}
	if len(v.Links) > 0 {
		fmt.Fprintf(tw, "linked\t%s\n", strings.Join(v.Links, ", "))
	}
	fmt.Fprintln(tw, "\nAT\tEVENT\tOTHER\tINTERFACE\tMESSAGE\tREVIEW")
	for _, h := range v.History {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.At.Local().Format(time.DateTime), h.What, dash(h.Other), dash(h.Interface), dash(h.MessageID), dash(h.ReviewID))
	}
	return tw.Flush()
}

// viewOf finds the patient id names (an identifier, else a patient key)
// and gathers what the index knows of it, following merges.
func viewOf(x *patientindex.Index, id string) (*patientView, error) {
	key := id
	if e, ok := x.Identifier(id); ok {
		key = e.Patient
	} else if _, ok := x.Patient(id); !ok {
		return nil, fmt.Errorf("careflow knows no identifier or patient %q (write it value^authority, as the patient key is)", id)
	}
	v := &patientView{Key: key, Resolved: x.Resolve(key), Merged: []string{}, Links: []string{}}
	if p, ok := x.Patient(key); ok {
		v.MergedInto = p.MergedInto
	}
	p, ok := x.Patient(v.Resolved)
	if !ok {
		return nil, errors.New("the index names patient " + v.Resolved + " but has no record of it (is careflow.patients compacted mid-write?)")
	}
	v.Links, v.History = append(v.Links, p.Links...), p.History
	seen := map[string]bool{}
	var collect func(pe *patientindex.PatientEntry)
	collect = func(pe *patientindex.PatientEntry) {
		for _, s := range pe.Identifiers {
			if e, ok := x.Identifier(s); ok && !seen[s] {
				seen[s] = true
				v.Identifiers = append(v.Identifiers, *e)
			}
		}
	}
	// The survivor's own identifiers, then those of every patient merged
	// into it, along chains (A into B into C: C shows A's too).
	queue := []*patientindex.PatientEntry{p}
	for len(queue) > 0 {
		pe := queue[0]
		queue = queue[1:]
		collect(pe)
		for _, h := range pe.History {
			if h.What != "merged" || seen["patient:"+h.Other] {
				continue
			}
			seen["patient:"+h.Other] = true
			if m, ok := x.Patient(h.Other); ok && x.Resolve(h.Other) == v.Resolved {
				v.Merged = append(v.Merged, h.Other)
				queue = append(queue, m)
			}
		}
	}
	return v, nil
}

// identitySummary is the demo's line about identity: patients the index
// knows (merged ones apart), merges, items waiting for review, and the
// distinct codes no map knows.
func identitySummary(ctx context.Context, opts []kgo.Opt, serde *avro.Serde, unmapped int) string {
	x, err := patientindex.Snapshot(ctx, opts)
	if err != nil {
		return "careflow identity        not read yet"
	}
	ps := x.Patients()
	patients, merged := 0, 0
	for _, p := range ps {
		if p.MergedInto != "" {
			merged++
		} else {
			patients++
		}
	}
	pending := "?"
	if q, err := review.Read(ctx, opts, serde); err == nil {
		pending = strconv.Itoa(len(q.List(avro.ReviewPending)))
	}
	return fmt.Sprintf("careflow identity        patients %d  merged %d  held for review %s  unmapped codes %d", patients, merged, pending, unmapped)
}
