package avro_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// TestEventFieldsMatchSchema walks ClinicalEvent.avsc independently of the
// Go types and checks that the catalogue names exactly its paths, in
// order, with the right kinds: the allow-list grammar is the schema's.
func TestEventFieldsMatchSchema(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal([]byte(avro.Schemas()[avro.NameClinicalEvent]), &root); err != nil {
		t.Fatal(err)
	}
	named := map[string]map[string]any{}
	var want []string
	var walk func(prefix string, rec map[string]any)
	walk = func(prefix string, rec map[string]any) {
		named[rec["name"].(string)] = rec
		for _, f := range rec["fields"].([]any) {
			f := f.(map[string]any)
			path := prefix + f["name"].(string)
			kind, sub := schemaKind(f["type"], named)
			want = append(want, path+" "+kind)
			if sub != nil {
				walk(path+".", sub)
			}
		}
	}
	walk("", root)

	var got []string
	for _, f := range avro.EventFields() {
		got = append(got, f.Path+" "+f.Kind.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("catalogue and schema differ\ncatalogue: %v\nschema:    %v", got, want)
	}
}

// schemaKind classifies an Avro field type as the catalogue does and
// returns the record whose fields sit below it, if any.
func schemaKind(typ any, named map[string]map[string]any) (string, map[string]any) {
	switch v := typ.(type) {
	case string:
		if rec, ok := named[v]; ok {
			return "record", rec
		}
	case []any: // ["null", X]: a nullable X
		for _, b := range v {
			if b != "null" {
				return schemaKind(b, named)
			}
		}
	case map[string]any:
		switch v["type"] {
		case "record":
			return "record", v
		case "array":
			if k, rec := schemaKind(v["items"], named); k == "record" {
				return "list", rec
			}
		}
	}
	return "value", nil
}

func TestEventFieldsKindsAndEnvelope(t *testing.T) {
	tests := []struct {
		path     string
		kind     avro.FieldKind
		envelope bool
	}{
		{"event_id", avro.FieldValue, true},
		{"trigger_event", avro.FieldValue, true},
		{"provenance", avro.FieldRecord, true},
		{"provenance.ingest_time", avro.FieldValue, true},
		{"patient", avro.FieldRecord, false},
		{"patient.identifiers", avro.FieldList, false},
		{"patient.identifiers.value", avro.FieldValue, false},
		{"patient.given_names", avro.FieldValue, false}, // a list of strings has no sub-fields
		{"patient.prior_identifiers.assigning_facility", avro.FieldValue, false},
		{"encounter", avro.FieldRecord, false}, // a pointer in Go, a union in Avro
		{"encounter.prior_point_of_care", avro.FieldValue, false},
		{"orders", avro.FieldList, false},
		{"observations.order_index", avro.FieldValue, false},
	}
	for _, tc := range tests {
		f, ok := avro.LookupEventField(tc.path)
		if !ok || f.Kind != tc.kind || f.Envelope != tc.envelope {
			t.Errorf("%s: got %+v (found %v), want kind %v envelope %v", tc.path, f, ok, tc.kind, tc.envelope)
		}
	}
	// Every path's parent comes before it and is a record or list.
	seen := map[string]avro.FieldKind{}
	for _, f := range avro.EventFields() {
		if i := strings.LastIndexByte(f.Path, '.'); i >= 0 {
			if k, ok := seen[f.Path[:i]]; !ok || k == avro.FieldValue {
				t.Errorf("%s: parent %s not listed before it as a record or list", f.Path, f.Path[:i])
			}
		}
		if _, dup := seen[f.Path]; dup {
			t.Errorf("%s listed twice", f.Path)
		}
		seen[f.Path] = f.Kind
	}
}

func TestCheckEventFields(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  []string // "index: message", one per bad entry
	}{
		{"all valid", []string{"patient.identifiers", "patient.family_name", "orders", "observations.value", "event_id", "provenance.sending_facility"}, nil},
		{"empty list", []string{}, nil},
		{"typo", []string{"patient.famly_name"}, []string{
			`0: "patient.famly_name" is not a field of the canonical event (did you mean "patient.family_name"?)`}},
		{"plural slip", []string{"patient.sex", "patient.address.city"}, []string{
			`1: "patient.address.city" is not a field of the canonical event (did you mean "patient.addresses.city"?)`}},
		{"list index written", []string{"observations[].value"}, []string{
			`0: "observations[].value" is not a field of the canonical event (did you mean "observations.value"?)`}},
		{"case and spaces", []string{" Patient.Sex"}, []string{
			`0: " Patient.Sex" is not a field of the canonical event (did you mean "patient.sex"?)`}},
		{"parent left out", []string{"birth_date", "postal_code"}, []string{
			`0: "birth_date" is not a field of the canonical event (did you mean "patient.birth_date"?)`,
			`1: "postal_code" is not a field of the canonical event (did you mean "patient.addresses.postal_code"?)`}},
		// "value" ends several paths (identifiers', observations'): no guess.
		{"ambiguous leaf", []string{"value"}, []string{
			`0: "value" is not a field of the canonical event`}},
		{"nothing close", []string{"patient.allergies", "nk1"}, []string{
			`0: "patient.allergies" is not a field of the canonical event`,
			`1: "nk1" is not a field of the canonical event`}},
		{"Go name, not JSON name", []string{"Patient.FamilyName"}, []string{
			`0: "Patient.FamilyName" is not a field of the canonical event (did you mean "patient.family_name"?)`}},
		{"empty entry", []string{"orders", "", "  "}, []string{
			`1: empty field path`,
			`2: "  " is not a field of the canonical event`}},
		{"list index written with a number", []string{"orders[0].status", "orders[*].control"}, []string{
			`0: "orders[0].status" is not a field of the canonical event (did you mean "orders.status"?)`,
			`1: "orders[*].control" is not a field of the canonical event (did you mean "orders.control"?)`}},
		// Three edits from "encounter.bed": another word, not a typo.
		{"a word the model lacks", []string{"encounter.ward"}, []string{
			`0: "encounter.ward" is not a field of the canonical event`}},
		{"each bad entry once, in order", []string{"encounter.rooom", "orders", "observatons"}, []string{
			`0: "encounter.rooom" is not a field of the canonical event (did you mean "encounter.room"?)`,
			`2: "observatons" is not a field of the canonical event (did you mean "observations"?)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, err := range avro.CheckEventFields(tc.paths) {
				var fe *avro.FieldPathError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v is not a *FieldPathError", err)
				}
				if tc.paths[fe.Index] != fe.Path {
					t.Errorf("error for index %d carries path %q, the entry is %q", fe.Index, fe.Path, tc.paths[fe.Index])
				}
				got = append(got, strconv.Itoa(fe.Index)+": "+err.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}
