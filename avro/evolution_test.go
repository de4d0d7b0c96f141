package avro_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
)

// writeWith registers the schema in testdata/<file> under the ClinicalEvent
// subject and encodes native with it, as a producer on that schema version
// would.
func writeWith(t *testing.T, reg avro.Registry, file string, native map[string]any) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.Register(context.Background(), avro.NameClinicalEvent, string(text))
	if err != nil {
		t.Fatalf("register %s: %v", file, err)
	}
	codec, err := goavro.NewCodec(string(text))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := new(sr.ConfluentHeader).AppendEncode(nil, id, nil)
	b, err = codec.BinaryFromNative(b, native)
	if err != nil {
		t.Fatalf("encode with %s: %v", file, err)
	}
	return b
}

// TestDecodeOlderWriter reads a record written with version 0 of
// ClinicalEvent, which had no encounter, orders, observations, addresses,
// prior identifiers or provenance ingest time: those take their defaults.
func TestDecodeOlderWriter(t *testing.T) {
	s, reg := newSerde(t)
	b := writeWith(t, reg, "ClinicalEvent.v0.avsc", map[string]any{
		"event_id":   "e-old",
		"event_type": "admit",
		"patient": map[string]any{
			"identifiers": []any{map[string]any{"value": "12345", "assigning_authority": "GENHOSP", "type_code": "MR"}},
			"family_name": "TESTPATIENT",
			"given_names": []any{"ALEX"},
		},
		"provenance": map[string]any{"message_id": "e-old", "version": "2.3"},
	})
	if id := int(b[4]); id == s.SchemaID(&avro.ClinicalEvent{}) {
		t.Fatal("v0 got the current schema's id; the test would not exercise evolution")
	}
	var got avro.ClinicalEvent
	if err := s.Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	want := avro.ClinicalEvent{
		EventID:   "e-old",
		EventType: "admit",
		Patient: avro.Patient{
			Identifiers: []avro.Identifier{{Value: "12345", AssigningAuthority: "GENHOSP", TypeCode: "MR"}},
			FamilyName:  "TESTPATIENT",
			GivenNames:  []string{"ALEX"},
		},
		Provenance: avro.Provenance{MessageID: "e-old", Version: "2.3"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded v0 record\n got %+v\nwant %+v", got, want)
	}
}

// TestDecodeNewerWriter reads a record written by a future version with
// fields this code does not know; they are skipped and the rest is intact.
func TestDecodeNewerWriter(t *testing.T) {
	s, reg := newSerde(t)
	var event avro.ClinicalEvent
	fixture(t, "ClinicalEvent", &event)
	native := avro.EventToNative(&event)
	native["acuity"] = "high"
	native["patient"].(map[string]any)["deceased"] = true
	for _, o := range native["observations"].([]any) {
		o.(map[string]any)["method"] = goavro.Union("string", "manual")
	}
	b := writeWith(t, reg, "ClinicalEvent.future.avsc", native)

	var got avro.ClinicalEvent
	if err := s.Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, event) {
		t.Fatalf("decoded future record differs\n got %+v\nwant %+v", got, event)
	}
}

// TestDefaultsOfAbsentFields decodes a record whose writer schema has no
// fields at all, so every field takes its default. It guards the promise
// in native.go that the Go decoder and the .avsc defaults agree.
func TestDefaultsOfAbsentFields(t *testing.T) {
	s, reg := newSerde(t)
	empty := `{"type":"record","name":"Observation","namespace":"careflow","fields":[]}`
	obs := map[string]any{}
	for _, f := range fieldsOf(t, avro.Schemas()[avro.NameClinicalEvent], "careflow.Observation") {
		obs[f["name"].(string)] = f["default"]
	}
	if obs["order_index"] != -1.0 {
		t.Fatalf("order_index default = %v; update observationFromNative with the schema", obs["order_index"])
	}
	// A ClinicalEvent whose observations were written with an empty
	// Observation record: each must read back with the schema defaults.
	writer := strings.Replace(avro.Schemas()[avro.NameClinicalEvent], observationRecord(t), empty, 1)
	if writer == avro.Schemas()[avro.NameClinicalEvent] {
		t.Fatal("could not cut the Observation record out of the schema")
	}
	id, err := reg.Register(context.Background(), "test.defaults", writer)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(writer)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := new(sr.ConfluentHeader).AppendEncode(nil, id, nil)
	b, err = codec.BinaryFromNative(b, map[string]any{"observations": []any{map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	var got avro.ClinicalEvent
	if err := s.Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	want := avro.ClinicalEvent{Observations: []avro.Observation{{OrderIndex: -1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("absent fields decoded as %+v, want %+v", got, want)
	}
}

// observationRecord is the Observation definition as it appears, compact,
// in the embedded schema; the test swaps it for an empty record.
func observationRecord(t *testing.T) string {
	t.Helper()
	text := avro.Schemas()[avro.NameClinicalEvent]
	start := strings.Index(text, `{
      "type": "record", "name": "Observation"`)
	if start < 0 {
		t.Fatal("Observation record not found in ClinicalEvent.avsc")
	}
	depth := 0
	for i := start; i < len(text); i++ {
		switch text[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return text[start : i+1]
			}
		}
	}
	t.Fatal("Observation record not closed")
	return ""
}

// TestSchemasMatchRecords checks that each schema names exactly the Go
// record's json tags, field for field and in order, and that every field
// has a default (the evolution rule in docs/schemas.md).
func TestSchemasMatchRecords(t *testing.T) {
	tests := []struct {
		schema string
		record string
		goType reflect.Type
	}{
		{avro.NameRawMessage, "careflow.RawMessage", reflect.TypeFor[avro.RawMessage]()},
		{avro.NameDeliveryOutcome, "careflow.DeliveryOutcome", reflect.TypeFor[avro.DeliveryOutcome]()},
		{avro.NameDeadLetter, "careflow.DeadLetter", reflect.TypeFor[avro.DeadLetter]()},
		{avro.NameDeadLetter, "careflow.Header", reflect.TypeFor[avro.Header]()},
		{avro.NameClinicalEvent, "careflow.ClinicalEvent", reflect.TypeFor[avro.ClinicalEvent]()},
		{avro.NameClinicalEvent, "careflow.Patient", reflect.TypeFor[avro.Patient]()},
		{avro.NameClinicalEvent, "careflow.Identifier", reflect.TypeFor[avro.Identifier]()},
		{avro.NameClinicalEvent, "careflow.Address", reflect.TypeFor[avro.Address]()},
		{avro.NameClinicalEvent, "careflow.Encounter", reflect.TypeFor[avro.Encounter]()},
		{avro.NameClinicalEvent, "careflow.Order", reflect.TypeFor[avro.Order]()},
		{avro.NameClinicalEvent, "careflow.Observation", reflect.TypeFor[avro.Observation]()},
		{avro.NameClinicalEvent, "careflow.Provenance", reflect.TypeFor[avro.Provenance]()},
		{avro.NameAuditEvent, "careflow.AuditEvent", reflect.TypeFor[avro.AuditEvent]()},
		{avro.NameException, "careflow.Exception", reflect.TypeFor[avro.Exception]()},
		{avro.NameOrderTransition, "careflow.OrderTransition", reflect.TypeFor[avro.OrderTransition]()},
	}
	timeType := reflect.TypeFor[time.Time]()
	for _, tt := range tests {
		t.Run(tt.record, func(t *testing.T) {
			fields := fieldsOf(t, avro.Schemas()[tt.schema], tt.record)
			if len(fields) != tt.goType.NumField() {
				t.Fatalf("schema has %d fields, Go type %d", len(fields), tt.goType.NumField())
			}
			for i, f := range fields {
				gf := tt.goType.Field(i)
				tag, _, _ := strings.Cut(gf.Tag.Get("json"), ",")
				if f["name"] != tag {
					t.Errorf("field %d: schema %v, Go %s (json %q)", i, f["name"], gf.Name, tag)
				}
				if _, ok := f["default"]; !ok {
					t.Errorf("field %v has no default", f["name"])
				}
				if gf.Type == timeType {
					ft, _ := f["type"].(map[string]any)
					if ft["type"] != "long" || ft["logicalType"] != "timestamp-millis" {
						t.Errorf("time field %v is %v, want long timestamp-millis", f["name"], f["type"])
					}
				}
			}
		})
	}
}

// fieldsOf returns the fields of the record named full inside schema text.
func fieldsOf(t *testing.T, text, full string) []map[string]any {
	t.Helper()
	var root any
	if err := json.Unmarshal([]byte(text), &root); err != nil {
		t.Fatal(err)
	}
	var found []map[string]any
	var walk func(node any)
	walk = func(node any) {
		switch v := node.(type) {
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			if v["type"] == "record" && "careflow."+v["name"].(string) == full {
				for _, f := range v["fields"].([]any) {
					found = append(found, f.(map[string]any))
				}
				return
			}
			for _, k := range []string{"fields", "type", "items"} {
				walk(v[k])
			}
		}
	}
	walk(root)
	if found == nil {
		t.Fatalf("record %s not in schema", full)
	}
	return found
}

// TestEmbeddedSchemasEvolveFromOlderVersions registers the older versions
// kept in testdata first, then the embedded schemas: the registry's
// BACKWARD check must accept them, as a production registry holding the
// old versions would. A field added without a default fails here.
func TestEmbeddedSchemasEvolveFromOlderVersions(t *testing.T) {
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Registered in name order: <Record>.v0.avsc, <Record>.v1.avsc, ...
	older, err := filepath.Glob(filepath.Join("testdata", "*.v[0-9]*.avsc"))
	if err != nil || len(older) == 0 {
		t.Fatalf("no older schema versions in testdata (%v)", err)
	}
	for _, file := range older {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		record, _, _ := strings.Cut(filepath.Base(file), ".v")
		subject := "careflow." + record
		if _, err := reg.Register(context.Background(), subject, string(text)); err != nil {
			t.Fatalf("register %s: %v", file, err)
		}
	}
	if _, err := avro.NewSerde(context.Background(), reg); err != nil {
		t.Fatalf("embedded schemas are not BACKWARD compatible with their older versions: %v", err)
	}
}

// TestDeliveryOutcomeBeforeRemoteIDs registers DeliveryOutcome as it was
// before remote_ids, then the current schema over it (the registry checks
// BACKWARD compatibility), and reads a record the older producer wrote:
// remote_ids takes its default, nothing.
func TestDeliveryOutcomeBeforeRemoteIDs(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal([]byte(avro.Schemas()[avro.NameDeliveryOutcome]), &schema); err != nil {
		t.Fatal(err)
	}
	fields := schema["fields"].([]any)
	last := fields[len(fields)-1].(map[string]any)
	if last["name"] != "remote_ids" {
		t.Fatalf("last field is %v; the test cuts remote_ids", last["name"])
	}
	schema["fields"] = fields[:len(fields)-1]
	old, err := json.Marshal(schema)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.Register(context.Background(), avro.NameDeliveryOutcome, string(old))
	if err != nil {
		t.Fatal(err)
	}
	s, err := avro.NewSerde(context.Background(), reg) // registers the current schema after it
	if err != nil {
		t.Fatalf("the current DeliveryOutcome is not BACKWARD compatible with the one before remote_ids: %v", err)
	}
	if id == s.SchemaID(&avro.DeliveryOutcome{}) {
		t.Fatal("the older schema got the current one's id; the test would not exercise evolution")
	}
	codec, err := goavro.NewCodec(string(old))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := new(sr.ConfluentHeader).AppendEncode(nil, id, nil)
	b, err = codec.BinaryFromNative(b, map[string]any{"outcome_id": "o-1", "status": "delivered", "http_status": int32(200)})
	if err != nil {
		t.Fatal(err)
	}
	var got avro.DeliveryOutcome
	if err := s.Decode(b, &got); err != nil {
		t.Fatal(err)
	}
	want := avro.DeliveryOutcome{OutcomeID: "o-1", Status: "delivered", HTTPStatus: 200}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("older outcome decoded as\n got %+v\nwant %+v", got, want)
	}
}
