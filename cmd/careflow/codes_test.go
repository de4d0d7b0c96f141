package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/topics"
)

// careflow codes unmapped reads careflow.exceptions from the start and
// lists each unmapped local code once per interface, system, code and
// field, with its count and first and last sighting, newest first; other
// exceptions and older sightings than --since are left out.
func TestCodesUnmappedCommand(t *testing.T) {
	fx := newToolFixture(t, topics.Exceptions)
	now := time.Now().UTC().Truncate(time.Millisecond)
	unmapped := func(iface, system, code, field string, ago time.Duration) avro.Exception {
		return avro.Exception{Code: "unmapped_code", Interface: iface, CodingSystem: system, CodedValue: code, Location: field,
			Reason: field + ": local code " + code + " is not in code map lab-loinc (version 3); passed on as sent",
			Action: avro.ActionDelivered, At: now.Add(-ago)}
	}
	again := unmapped("lab-results", "L", "HDL", "OBX-3", time.Hour)
	again.ExceptionID = "m9/exception/unmapped_code/OBX-3"
	for i, x := range []avro.Exception{
		again, again, // raised again (a replay, an approved hold): counted once
		unmapped("lab-results", "L", "HDL", "OBX-3", 48*time.Hour), // outside 24h
		unmapped("lab-results", "L", "HDL", "OBX-3", 3*time.Hour),
		unmapped("lab-results", "L", "TRIG", "OBX-3", 2*time.Hour),
		unmapped("lab-results", "L", "HDL", "OBR-4", 90*time.Minute), // another field
		unmapped("ehr", "L", "HDL", "OBX-3", 30*time.Minute),         // another interface
		{Code: avro.ExceptionStaleUpdate, Interface: "ehr", At: now},
	} {
		b, err := fx.serde.Encode(&x)
		if err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Topic: topics.Exceptions, Key: fmt.Appendf(nil, "P%d", i%3), Value: b}
		if err := fx.client.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	args := func(extra ...string) []string {
		return append([]string{"codes", "unmapped", "--config", "../../examples/demo/careflow.yaml",
			"--brokers", strings.Join(fx.cluster.ListenAddrs(), ","), "--schema-registry", fx.reg.URL}, extra...)
	}
	code, out, errOut := runCLI(args("--json")...)
	if code != 0 {
		t.Fatalf("codes unmapped --json exited %d: %s", code, errOut)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, out)
	}
	want := []string{"ehr L HDL OBX-3 1", "lab-results L HDL OBX-3 2", "lab-results L HDL OBR-4 1", "lab-results L TRIG OBX-3 1"}
	var lines []string
	for _, g := range got {
		lines = append(lines, fmt.Sprintf("%v %v %v %v %v", g["interface"], g["coding_system"], g["code"], g["field"], g["count"]))
		for _, k := range []string{"first_seen", "last_seen", "reason"} {
			if _, ok := g[k]; !ok {
				t.Errorf("%v lacks %q", g, k)
			}
		}
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("groups, newest first:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	first, _ := time.Parse(time.RFC3339Nano, got[1]["first_seen"].(string))
	last, _ := time.Parse(time.RFC3339Nano, got[1]["last_seen"].(string))
	if !first.Equal(now.Add(-3*time.Hour)) || !last.Equal(now.Add(-time.Hour)) {
		t.Errorf("HDL first %v last %v, want 3h and 1h ago", first, last)
	}
	if code, out, _ := runCLI(args("--since", "72h", "--json")...); code != 0 || !strings.Contains(out, `"count": 3`) {
		t.Errorf("--since 72h counts the older sighting: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI(args()...); code != 0 || !strings.Contains(out, "LAST SEEN") || !strings.Contains(out, "TRIG") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI(args("--since", "1s")...); code != 0 || !strings.Contains(out, "no unmapped codes in the last 1s") {
		t.Errorf("nothing in the window: exit %d\n%s", code, out)
	}
	if code, out, _ := runCLI(args("--since", "1s", "--json")...); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("nothing in the window, JSON: exit %d %q", code, out)
	}
	if code, _, _ := runCLI("codes"); code != 2 {
		t.Errorf("codes without a subcommand: exit %d, want 2", code)
	}
	if code, _, _ := runCLI("codes", "unmapped", "--since", "0s"); code != 2 {
		t.Errorf("--since 0s: exit %d, want 2", code)
	}
}
