// This file embeds the record schemas and names them. A schema's subject in
// the registry is the record's full name (RecordNameStrategy): outbound
// topics are created per destination at run time, so a topic-named subject
// would multiply one schema over many subjects and many ids.

package avro

import (
	"embed"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"
)

// Full names of careflow's records. Each is also the record's subject in
// the schema registry.
const (
	NameRawMessage      = "careflow.RawMessage"
	NameClinicalEvent   = "careflow.ClinicalEvent"
	NameDeliveryOutcome = "careflow.DeliveryOutcome"
	NameDeadLetter      = "careflow.DeadLetter"
	NameAuditEvent      = "careflow.AuditEvent"
	NameException       = "careflow.Exception"
	NameOrderTransition = "careflow.OrderTransition"
	NameReview          = "careflow.Review"
)

//go:embed RawMessage.avsc ClinicalEvent.avsc DeliveryOutcome.avsc DeadLetter.avsc AuditEvent.avsc Exception.avsc OrderTransition.avsc Review.avsc
var schemaFiles embed.FS

// schemaTexts maps each full name to its schema text, read once at init so
// that a missing embed fails the first test rather than the first encode.
var schemaTexts = func() map[string]string {
	m := make(map[string]string, 8)
	for name, file := range map[string]string{
		NameRawMessage:      "RawMessage.avsc",
		NameClinicalEvent:   "ClinicalEvent.avsc",
		NameDeliveryOutcome: "DeliveryOutcome.avsc",
		NameDeadLetter:      "DeadLetter.avsc",
		NameAuditEvent:      "AuditEvent.avsc",
		NameException:       "Exception.avsc",
		NameOrderTransition: "OrderTransition.avsc",
		NameReview:          "Review.avsc",
	} {
		b, err := schemaFiles.ReadFile(file)
		if err != nil {
			panic("avro: embedded schema " + file + " missing: " + err.Error())
		}
		m[name] = string(b)
	}
	return m
}()

// Schemas returns the embedded schema texts keyed by full record name, for
// tools that register or print them. The map is the caller's to change.
func Schemas() map[string]string { return maps.Clone(schemaTexts) }

// KeepsFields checks a new schema for one of careflow's subjects: every
// field careflow's own schema for that record has (in nested records too)
// must still be there, because the pipeline reads them all, and a
// "latest" version without, say, RawMessage.payload would let a consumer
// that follows the latest silently lose the message. Subjects careflow
// does not own pass. Compatibility itself is the registry's check.
func KeepsFields(subject, schema string) error {
	own, ok := schemaTexts[subject]
	if !ok {
		return nil
	}
	var want, got any
	if err := json.Unmarshal([]byte(own), &want); err != nil {
		return fmt.Errorf("embedded schema %s: %w", subject, err)
	}
	if err := json.Unmarshal([]byte(schema), &got); err != nil {
		return fmt.Errorf("schema is not JSON: %w", err)
	}
	wantRecs, gotRecs := map[string][]string{}, map[string][]string{}
	collectFields(want, "careflow", wantRecs)
	collectFields(got, "careflow", gotRecs)
	var missing []string
	for rec, fields := range wantRecs {
		have := map[string]bool{}
		for _, f := range gotRecs[rec] {
			have[f] = true
		}
		for _, f := range fields {
			if !have[f] {
				missing = append(missing, rec+"."+f)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("it drops %s, which careflow reads; a new version may add fields, never remove them", strings.Join(missing, ", "))
	}
	return nil
}

// collectFields records, for every named record in an Avro schema (parsed
// JSON), its field names, keyed by the record's full name.
func collectFields(node any, namespace string, out map[string][]string) {
	switch n := node.(type) {
	case []any: // a union
		for _, b := range n {
			collectFields(b, namespace, out)
		}
	case map[string]any:
		if ns, ok := n["namespace"].(string); ok && ns != "" {
			namespace = ns
		}
		switch n["type"] {
		case "record":
			name, _ := n["name"].(string)
			if !strings.Contains(name, ".") {
				name = namespace + "." + name
			}
			fields, _ := n["fields"].([]any)
			names := make([]string, 0, len(fields))
			for _, f := range fields {
				fm, _ := f.(map[string]any)
				fname, _ := fm["name"].(string)
				names = append(names, fname)
				collectFields(fm["type"], namespace, out)
			}
			out[name] = names
		case "array":
			collectFields(n["items"], namespace, out)
		case "map":
			collectFields(n["values"], namespace, out)
		default:
			collectFields(n["type"], namespace, out)
		}
	}
}
