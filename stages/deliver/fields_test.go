package deliver_test

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/deliver"
)

// fullEvent loads testdata/full_event.json: an ORU^R01 in which every
// field of the canonical model is set, each to its own path and element
// number ("patient.addresses.city@2"), so that a value found in an output
// names the field it came from. Each call returns a fresh copy.
func fullEvent(t testing.TB) *avro.ClinicalEvent {
	t.Helper()
	b, err := os.ReadFile("testdata/full_event.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev avro.ClinicalEvent
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("testdata/full_event.json: %v", err)
	}
	return &ev
}

var timeType = reflect.TypeFor[time.Time]()

// walkValues calls fn for every value field of ev (a kind-value path of
// avro.EventFields) with its path, once per list element; nil encounters
// are skipped.
func walkValues(ev *avro.ClinicalEvent, fn func(path string, v reflect.Value)) {
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			f, p := v.Field(i), prefix+name
			switch {
			case f.Kind() == reflect.Pointer:
				if !f.IsNil() {
					walk(f.Elem(), p+".")
				}
			case f.Kind() == reflect.Struct && f.Type() != timeType:
				walk(f, p+".")
			case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
				for j := range f.Len() {
					walk(f.Index(j), p+".")
				}
			default:
				fn(p, f)
			}
		}
	}
	walk(reflect.ValueOf(ev).Elem(), "")
}

// survivors lists, sorted, the clinical value paths that hold a non-zero
// value in some element of ev. order_index is left out: it is structure
// (TestFieldsOrderIndex).
func survivors(ev *avro.ClinicalEvent) []string {
	seen := map[string]bool{}
	walkValues(ev, func(p string, v reflect.Value) {
		if f, _ := avro.LookupEventField(p); !f.Envelope && p != "observations.order_index" && !v.IsZero() {
			seen[p] = true
		}
	})
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// under reports whether path is allow or below it.
func under(path, allow string) bool {
	return path == allow || strings.HasPrefix(path, allow+".")
}

// allowedBy reports whether profile lets path through (nil: everything).
func allowedBy(path string, profile []string) bool {
	if profile == nil {
		return true
	}
	for _, a := range profile {
		if under(path, a) {
			return true
		}
	}
	return false
}

// oracle is the filter's meaning, written independently of it by
// reflection: every field of a fresh copy of the fixture that no profile
// path or envelope path covers is zeroed, a record with nothing allowed
// below it is zeroed (nil for the encounter), lists keep their length, and
// order_index follows the rule in fields.go.
func oracle(t *testing.T, profile []string) *avro.ClinicalEvent {
	ev := fullEvent(t)
	if profile == nil {
		return ev
	}
	allow := slices.Clone(profile)
	for _, f := range avro.EventFields() {
		if f.Envelope {
			allow = append(allow, f.Path)
		}
	}
	anyUnder := func(p string) bool {
		return slices.ContainsFunc(allow, func(a string) bool { return under(a, p) })
	}
	if anyUnder("observations") {
		allow = append(allow, "observations.order_index")
	}
	var prune func(v reflect.Value, prefix string)
	prune = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			f, p := v.Field(i), prefix+name
			switch {
			case allowedBy(p, allow):
			case !anyUnder(p):
				f.SetZero()
			case f.Kind() == reflect.Pointer:
				if !f.IsNil() {
					prune(f.Elem(), p+".")
				}
			case f.Kind() == reflect.Struct:
				prune(f, p+".")
			case f.Kind() == reflect.Slice:
				for j := range f.Len() {
					prune(f.Index(j), p+".")
				}
			}
		}
	}
	prune(reflect.ValueOf(ev).Elem(), "")
	if !anyUnder("orders") {
		for i := range ev.Observations {
			ev.Observations[i].OrderIndex = -1
		}
	}
	return ev
}

func compile(t testing.TB, profile []string) *deliver.Fields {
	t.Helper()
	if profile == nil {
		return nil
	}
	f, err := deliver.CompileFields(profile)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFixtureIsFull guards the fixture the filter tests rely on: every
// value field is set in every element, every list has at least two
// elements, and no planted value contains another (so that finding one in
// an output is unambiguous).
func TestFixtureIsFull(t *testing.T) {
	ev := fullEvent(t)
	var tokens []string
	set := map[string]bool{}
	walkValues(ev, func(p string, v reflect.Value) {
		if p == "observations.order_index" {
			set[p] = true
			return
		}
		if v.IsZero() || v.Kind() == reflect.Slice && v.Len() < 2 {
			t.Errorf("fixture: %s is empty or has fewer than two elements", p)
		}
		set[p] = true
		if f, _ := avro.LookupEventField(p); !f.Envelope {
			tokens = append(tokens, plantedValues(v)...)
		}
	})
	for _, f := range avro.EventFields() {
		if f.Kind == avro.FieldValue && !set[f.Path] {
			t.Errorf("fixture: %s is missing", f.Path)
		}
	}
	for _, l := range [][]any{{"identifiers", ev.Patient.Identifiers}, {"addresses", ev.Patient.Addresses},
		{"prior_identifiers", ev.Patient.PriorIdentifiers}, {"orders", ev.Orders}, {"observations", ev.Observations}} {
		if reflect.ValueOf(l[1]).Len() < 2 {
			t.Errorf("fixture: %s has fewer than two elements", l[0])
		}
	}
	for _, a := range tokens {
		for _, b := range tokens {
			if a != b && strings.Contains(b, a) {
				t.Errorf("fixture: planted value %q is inside %q", a, b)
			}
		}
	}
}

// plantedValues returns the strings of a value field: itself, or each
// element of a list of strings.
func plantedValues(v reflect.Value) []string {
	if v.Kind() == reflect.Slice {
		return v.Interface().([]string)
	}
	if v.Kind() == reflect.String {
		return []string{v.String()}
	}
	return nil
}

func TestFieldsProfiles(t *testing.T) {
	tests := []struct {
		name      string
		profile   []string
		survivors []string // exact clinical value paths left non-empty
		encounter bool     // the encounter survives
	}{
		{"no profile sends everything", nil, clinicalValuePaths(), true},
		{"empty profile: envelope only", []string{}, nil, false},
		{"envelope paths change nothing", []string{"event_id", "provenance", "provenance.sending_facility"}, nil, false},
		{"identity for a master patient index", []string{"patient.identifiers", "patient.family_name", "patient.birth_date"},
			[]string{"patient.birth_date", "patient.family_name", "patient.identifiers.assigning_authority",
				"patient.identifiers.assigning_facility", "patient.identifiers.type_code", "patient.identifiers.value"}, false},
		{"bed board: where, not who", []string{"encounter.point_of_care", "encounter.room", "encounter.bed", "patient.identifiers.value"},
			[]string{"encounter.bed", "encounter.point_of_care", "encounter.room", "patient.identifiers.value"}, true},
		{"lab results without demographics", []string{"patient.identifiers.value", "orders.placer_order_number", "orders.service_code",
			"observations.code", "observations.value", "observations.units"},
			[]string{"observations.code", "observations.units", "observations.value", "orders.placer_order_number",
				"orders.service_code", "patient.identifiers.value"}, false},
		{"postcode district only", []string{"patient.addresses.postal_code", "patient.sex"},
			[]string{"patient.addresses.postal_code", "patient.sex"}, false},
		{"a whole record and one of its fields", []string{"encounter", "encounter.room", "orders.status"},
			append(pathsUnder("encounter"), "orders.status"), true},
		{"whole lists", []string{"orders", "observations"}, append(pathsUnder("orders"), pathsUnder("observations")...), false},
		{"whole patient", []string{"patient"}, pathsUnder("patient"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := fullEvent(t)
			compile(t, tc.profile).Apply(ev)
			want := slices.Sorted(slices.Values(tc.survivors))
			if got := survivors(ev); !slices.Equal(got, want) {
				t.Errorf("survivors\n got %v\nwant %v", got, want)
			}
			if (ev.Encounter != nil) != tc.encounter {
				t.Errorf("encounter kept = %v, want %v", ev.Encounter != nil, tc.encounter)
			}
			if want := oracle(t, tc.profile); !reflect.DeepEqual(ev, want) {
				t.Errorf("filtered event differs from the oracle\n got %+v\nwant %+v", ev, want)
			}
		})
	}
}

// TestFieldsEveryPathAlone compiles each clinical path of the catalogue on
// its own and checks the result against the oracle: this is what proves the
// filter's rules cover every field of avro.ClinicalEvent, and what fails
// when a field is added to the model without a rule.
func TestFieldsEveryPathAlone(t *testing.T) {
	for _, f := range avro.EventFields() {
		if f.Envelope {
			continue
		}
		t.Run(f.Path, func(t *testing.T) {
			ev := fullEvent(t)
			compile(t, []string{f.Path}).Apply(ev)
			want := pathsUnder(f.Path)
			if f.Path == "observations.order_index" {
				want = nil // structure only
			}
			if got := survivors(ev); !slices.Equal(got, want) {
				t.Errorf("survivors\n got %v\nwant %v", got, want)
			}
			if o := oracle(t, []string{f.Path}); !reflect.DeepEqual(ev, o) {
				t.Errorf("filtered event differs from the oracle\n got %+v\nwant %+v", ev, o)
			}
		})
	}
}

// clinicalValuePaths is every non-envelope value path but order_index.
func clinicalValuePaths() []string { return pathsUnder("") }

// pathsUnder lists, sorted, the clinical value paths at or below prefix
// ("" for all), order_index left out as in survivors.
func pathsUnder(prefix string) []string {
	var out []string
	for _, f := range avro.EventFields() {
		if f.Kind == avro.FieldValue && !f.Envelope && f.Path != "observations.order_index" && (prefix == "" || under(f.Path, prefix)) {
			out = append(out, f.Path)
		}
	}
	slices.Sort(out)
	return out
}

func TestFieldsKeepShape(t *testing.T) {
	ev := fullEvent(t)
	compile(t, []string{"patient.addresses.city", "orders.status", "observations.value"}).Apply(ev)
	if len(ev.Patient.Addresses) != 2 || len(ev.Orders) != 2 || len(ev.Observations) != 3 {
		t.Fatalf("lists with sub-fields allowed changed length: %d addresses, %d orders, %d observations; want 2, 2, 3",
			len(ev.Patient.Addresses), len(ev.Orders), len(ev.Observations))
	}
	if ev.Patient.Identifiers != nil || ev.Patient.GivenNames != nil || ev.Patient.PriorIdentifiers != nil {
		t.Fatal("lists outside the profile were not emptied")
	}
	if ev.Patient.Addresses[1] != (avro.Address{City: "patient.addresses.city@2"}) {
		t.Fatalf("second address = %+v, want only its city", ev.Patient.Addresses[1])
	}

	// The encounter: nil stays nil, nothing allowed becomes nil.
	tests := []struct {
		profile []string
		start   *avro.Encounter
		want    *avro.Encounter
	}{
		{[]string{"encounter.room"}, nil, nil},
		{[]string{"encounter"}, nil, nil},
		{[]string{"patient.sex"}, &avro.Encounter{Room: "R1"}, nil},
		{[]string{"encounter.room"}, &avro.Encounter{Room: "R1", Bed: "B1"}, &avro.Encounter{Room: "R1"}},
		{[]string{"encounter.bed"}, &avro.Encounter{Room: "R1"}, &avro.Encounter{}}, // present, with nothing to say
	}
	for _, tc := range tests {
		ev := fullEvent(t)
		ev.Encounter = tc.start
		compile(t, tc.profile).Apply(ev)
		if !reflect.DeepEqual(ev.Encounter, tc.want) {
			t.Errorf("profile %v, encounter %+v: got %+v, want %+v", tc.profile, tc.start, ev.Encounter, tc.want)
		}
	}
}

// order_index is kept with any observation field while the destination
// receives orders, and is -1 ("none") when it receives none, so it is
// always -1 or an index into the orders actually sent.
func TestFieldsOrderIndex(t *testing.T) {
	tests := []struct {
		profile []string
		want    []int
	}{
		{nil, []int{0, 1, -1}},
		{[]string{"orders.status", "observations.value"}, []int{0, 1, -1}},
		{[]string{"orders", "observations"}, []int{0, 1, -1}},
		{[]string{"observations.value"}, []int{-1, -1, -1}},
		{[]string{"observations"}, []int{-1, -1, -1}},
		{[]string{"observations.order_index"}, []int{-1, -1, -1}},
		{[]string{"orders"}, nil}, // no observations sent
	}
	for _, tc := range tests {
		ev := fullEvent(t)
		compile(t, tc.profile).Apply(ev)
		var got []int
		for _, o := range ev.Observations {
			got = append(got, o.OrderIndex)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("profile %v: order indexes %v, want %v", tc.profile, got, tc.want)
		}
	}
}

func TestCompileFieldsRejectsUnknownPaths(t *testing.T) {
	_, err := deliver.CompileFields([]string{"patient.famly_name", "orders", "encounter.ward"})
	var fe *avro.FieldPathError
	if err == nil || !errors.As(err, &fe) || fe.Index != 0 {
		t.Fatalf("err = %v, want the *avro.FieldPathError of entry 0 first", err)
	}
	want := "fields: \"patient.famly_name\" is not a field of the canonical event (did you mean \"patient.family_name\"?)\n" +
		"\"encounter.ward\" is not a field of the canonical event"
	if err.Error() != want {
		t.Fatalf("err =\n%s\nwant\n%s", err, want)
	}
}

// A nil *Fields (no `fields` key) is today's behaviour: everything.
func TestFieldsNilAllowsAll(t *testing.T) {
	ev := fullEvent(t)
	var f *deliver.Fields
	f.Apply(ev)
	if !reflect.DeepEqual(ev, fullEvent(t)) {
		t.Fatal("a nil filter changed the event")
	}
}

// Apply runs on every delivery. It is idempotent and its work depends only
// on the event's shape, so one event is filtered over and over.
func BenchmarkFieldsApply(b *testing.B) {
	profiles := []struct {
		name    string
		profile []string
	}{
		{"none", nil},
		{"envelope_only", []string{}},
		{"whole_records", []string{"patient", "orders", "observations"}},
		{"lab_results", []string{"patient.identifiers.value", "patient.family_name", "orders.placer_order_number",
			"orders.service_code", "observations.code", "observations.value", "observations.units"}},
	}
	for _, p := range profiles {
		b.Run(p.name, func(b *testing.B) {
			f := compile(b, p.profile)
			ev := fullEvent(b)
			b.ReportAllocs()
			for b.Loop() {
				f.Apply(ev)
			}
		})
	}
}
