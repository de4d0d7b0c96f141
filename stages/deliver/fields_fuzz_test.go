// This file fuzzes the destination allow-list: CompileFields and
// avro.CheckEventFields, which read a destination's `fields`.

package deliver_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/deliver"
)

// FuzzFields: CompileFields and avro.CheckEventFields never panic and
// agree on which lists are valid; CompileFields' error holds exactly the
// *avro.FieldPathErrors CheckEventFields returns, each naming its entry
// (index and text, in list order) and suggesting only real paths. The
// filter of a valid list does to the full fixture event what the oracle
// says (every field no entry or envelope path covers is cleared, lists
// keep their length, order_index as fields.go says), a second Apply
// changes nothing, and an event without encounter or lists is filtered
// without panicking. The input is the list, one entry a line ("" is the
// empty list, which keeps only the envelope).
func FuzzFields(f *testing.F) {
	for _, fld := range avro.EventFields() {
		f.Add(fld.Path)
	}
	f.Add("")
	f.Add("patient.identifiers\npatient.family_name\npatient.given_names\npatient.birth_date\nencounter.patient_class\n" +
		"encounter.point_of_care\nencounter.admit_time\nencounter.discharge_time\norders.placer_order_number\norders.service_code\n" +
		"orders.service_text\norders.result_status\nobservations")
	f.Add("patient.famly_name\norders\nencounter.ward")
	f.Add("birth_date\norders[0].status\n Patient.Sex \n\nvalue")
	f.Add("observations.value\nobservations.order_index\nprovenance.source_interface\nevent_id")
	f.Add("patient\npatient.addresses.city\npatient")
	f.Fuzz(func(t *testing.T, list string) {
		paths := []string{}
		if list != "" {
			paths = strings.Split(list, "\n")
		}
		checked := avro.CheckEventFields(paths)
		fields, err := deliver.CompileFields(paths)
		if (err == nil) != (checked == nil) {
			t.Fatalf("%q: CompileFields %v, CheckEventFields %v", paths, err, checked)
		}
		if err != nil {
			var got []*avro.FieldPathError
			var walk func(error)
			walk = func(e error) {
				var fe *avro.FieldPathError
				if errors.As(e, &fe) && e == error(fe) {
					got = append(got, fe)
					return
				}
				switch u := e.(type) {
				case interface{ Unwrap() []error }:
					for _, e := range u.Unwrap() {
						walk(e)
					}
				case interface{ Unwrap() error }:
					walk(u.Unwrap())
				}
			}
			walk(err)
			if len(got) != len(checked) {
				t.Fatalf("%q: CompileFields reports %d bad entries, CheckEventFields %d", paths, len(got), len(checked))
			}
			last := -1
			for i, fe := range got {
				if want := checked[i].(*avro.FieldPathError); *fe != *want {
					t.Fatalf("%q: entry error %+v, CheckEventFields %+v", paths, fe, want)
				}
				if fe.Index <= last || fe.Index >= len(paths) || paths[fe.Index] != fe.Path {
					t.Fatalf("%q: error %+v does not name its entry", paths, fe)
				}
				last = fe.Index
				if _, ok := avro.LookupEventField(fe.Path); ok {
					t.Fatalf("%q: %q is a path, yet reported", paths, fe.Path)
				}
				if _, ok := avro.LookupEventField(fe.Suggestion); fe.Suggestion != "" && !ok {
					t.Fatalf("%q: suggestion %q is not a path", paths, fe.Suggestion)
				}
				if strings.TrimSpace(fe.Path) == "" && fe.Suggestion != "" {
					t.Fatalf("%q: a blank entry got suggestion %q", paths, fe.Suggestion)
				}
			}
			return
		}

		ev := fullEvent(t)
		fields.Apply(ev)
		if want := oracle(t, paths); !reflect.DeepEqual(ev, want) {
			t.Fatalf("%q: filtered event differs from the oracle\n got %+v\nwant %+v", paths, ev, want)
		}
		once := fullEvent(t)
		fields.Apply(once)
		fields.Apply(ev)
		if !reflect.DeepEqual(ev, once) {
			t.Fatalf("%q: a second Apply changed the event", paths)
		}
		bare := fullEvent(t)
		bare.Encounter, bare.Orders, bare.Observations, bare.Patient = nil, nil, nil, avro.Patient{}
		fields.Apply(bare)
		if bare.Encounter != nil || bare.Orders != nil || bare.Observations != nil {
			t.Fatalf("%q: Apply made up an encounter or a list: %+v", paths, bare)
		}
		fields.Apply(&avro.ClinicalEvent{})
	})
}
