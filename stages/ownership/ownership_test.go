package ownership_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/ownership"
)

// update is an A31 from the portal changing every demographic field, with
// next of kin and an allergy, at 2024-03-01 12:00.
func update(msgType string) *avro.ClinicalEvent {
	return &avro.ClinicalEvent{
		MessageType: msgType, TriggerEvent: "A31",
		Patient: avro.Patient{
			Identifiers: []avro.Identifier{{Value: "1", AssigningAuthority: "PORTAL", TypeCode: "PI"}},
			FamilyName:  "DOE", GivenNames: []string{"JANE"}, BirthDate: "19800101", Sex: "F",
			Addresses: []avro.Address{{Street: "1 High St"}},
			Telecoms:  []avro.Telecom{{Value: "01632 960001", Use: "PRN"}},
			GP:        avro.Practitioner{ID: "G1"},
		},
		NextOfKin:  []avro.NextOfKin{{FamilyName: "DOE"}},
		Allergies:  []avro.Allergy{{Code: "PEN"}},
		Provenance: avro.Provenance{EventTime: "20240301120000", MessageTime: "20240301120001"},
	}
}

var (
	noon   = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	before = noon.Add(-time.Hour)
	after  = noon.Add(time.Hour)
)

func matrix(t *testing.T, rules map[string]ownership.Rule) *ownership.Matrix {
	t.Helper()
	m, err := ownership.New("3", rules)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func lastAt(times map[string]time.Time) func(string) (time.Time, bool) {
	return func(f string) (time.Time, bool) { t, ok := times[f]; return t, ok }
}

func TestApply(t *testing.T) {
	ehr := []string{"ehr"}
	tests := []struct {
		name    string
		rules   map[string]ownership.Rule
		ev      func() *avro.ClinicalEvent
		source  string
		last    map[string]time.Time
		want    ownership.Decision
		changed func(*avro.ClinicalEvent) // what the event should look like after
	}{
		{
			name:   "owner: applied, nothing removed",
			rules:  map[string]ownership.Rule{ownership.Address: {Owners: ehr, Others: ownership.Strip}},
			ev:     func() *avro.ClinicalEvent { return update("ADT") },
			source: "ehr",
			want:   ownership.Decision{Applied: map[string]time.Time{ownership.Address: noon}},
		},
		{
			name: "non-owner under strip: the address goes, the telecom it owns stays",
			rules: map[string]ownership.Rule{
				ownership.Address: {Owners: ehr, Others: ownership.Strip},
				ownership.Telecom: {Owners: []string{"portal-updates"}, Others: ownership.Strip},
			},
			ev:      func() *avro.ClinicalEvent { return update("ADT") },
			source:  "portal-updates",
			want:    ownership.Decision{Stripped: []string{ownership.Address}, Applied: map[string]time.Time{ownership.Telecom: noon}},
			changed: func(ev *avro.ClinicalEvent) { ev.Patient.Addresses = nil },
		},
		{
			name:   "others default to strip",
			rules:  map[string]ownership.Rule{ownership.GP: {Owners: ehr}},
			ev:     func() *avro.ClinicalEvent { return update("ADT") },
			source: "portal-updates",
			want:   ownership.Decision{Stripped: []string{ownership.GP}},
			changed: func(ev *avro.ClinicalEvent) {
				ev.Patient.GP = avro.Practitioner{}
			},
		},
		{
			name: "every part field strips alone",
			rules: map[string]ownership.Rule{
				ownership.Name: {Owners: ehr}, ownership.BirthDate: {Owners: ehr}, ownership.Sex: {Owners: ehr},
				ownership.NextOfKin: {Owners: ehr}, ownership.Allergies: {Owners: ehr},
			},
			ev:     func() *avro.ClinicalEvent { return update("ADT") },
			source: "portal-updates",
			want:   ownership.Decision{Stripped: []string{ownership.Name, ownership.BirthDate, ownership.Sex, ownership.NextOfKin, ownership.Allergies}},
			changed: func(ev *avro.ClinicalEvent) {
				ev.Patient.FamilyName, ev.Patient.GivenNames, ev.Patient.BirthDate, ev.Patient.Sex = "", nil, "", ""
				ev.NextOfKin, ev.Allergies = nil, nil
			},
		},
		{
			name:   "non-owner under accept: applied",
			rules:  map[string]ownership.Rule{ownership.Address: {Owners: ehr, Others: ownership.Accept}},
			ev:     func() *avro.ClinicalEvent { return update("ADT") },
			source: "portal-updates",
			want:   ownership.Decision{Applied: map[string]time.Time{ownership.Address: noon}},
		},
		{
			name:   "non-owner under review: delivered as sent, not applied",
			rules:  map[string]ownership.Rule{ownership.Address: {Owners: ehr, Others: ownership.Review}},
			ev:     func() *avro.ClinicalEvent { return update("ADT") },
			source: "portal-updates",
			want:   ownership.Decision{Review: []string{ownership.Address}},
		},
		{
			name:   "a field the event leaves empty is no update",
			rules:  map[string]ownership.Rule{ownership.Address: {Owners: ehr}},
			ev:     func() *avro.ClinicalEvent { ev := update("ADT"); ev.Patient.Addresses = nil; return ev },
			source: "portal-updates",
		},
		{
			name:   "the patient in a result is not a demographics update",
			rules:  map[string]ownership.Rule{ownership.Address: {Owners: ehr}},
			ev:     func() *avro.ClinicalEvent { return update("ORU") },
			source: "lab-results",
		},
		{
			name:   "newer: later than the last applied",
			rules:  map[string]ownership.Rule{ownership.Address: {Owners: ehr, Newer: true}},
			ev:     func() *avro.ClinicalEvent { return update("ADT") },
			source: "ehr",
			last:   map[string]time.Time{ownership.Address: before},
			want:   ownership.Decision{Applied: map[string]time.Time{ownership.Address: noon}},
		},
		{
			name:    "newer: not later than the last applied, even from the owner",
			rules:   map[string]ownership.Rule{ownership.Address: {Owners: ehr, Newer: true}},
			ev:      func() *avro.ClinicalEvent { return update("ADT") },
			source:  "ehr",
			last:    map[string]time.Time{ownership.Address: noon},
			want:    ownership.Decision{Stale: []string{ownership.Address}},
			changed: func(ev *avro.ClinicalEvent) { ev.Patient.Addresses = nil },
		},
		{
			name:    "newer: an accepted non-owner update older than the last",
			rules:   map[string]ownership.Rule{ownership.Telecom: {Owners: ehr, Others: ownership.Accept, Newer: true}},
			ev:      func() *avro.ClinicalEvent { return update("ADT") },
			source:  "portal-updates",
			last:    map[string]time.Time{ownership.Telecom: after},
			want:    ownership.Decision{Stale: []string{ownership.Telecom}},
			changed: func(ev *avro.ClinicalEvent) { ev.Patient.Telecoms = nil },
		},
		{
			name:  "newer: no readable time after one was applied",
			rules: map[string]ownership.Rule{ownership.Address: {Owners: ehr, Newer: true}},
			ev: func() *avro.ClinicalEvent {
				ev := update("ADT")
				ev.Provenance.EventTime, ev.Provenance.MessageTime = "yesterday", ""
				return ev
			},
			source: "ehr",
			last:   map[string]time.Time{ownership.Address: before},
			want:   ownership.Decision{Stale: []string{ownership.Address}},
			changed: func(ev *avro.ClinicalEvent) {
				ev.Patient.Addresses = nil
			},
		},
		{
			name:   "newer: nothing applied before, no state",
			rules:  map[string]ownership.Rule{ownership.Address: {Owners: ehr, Newer: true}},
			ev:     func() *avro.ClinicalEvent { return update("ADT") },
			source: "ehr",
			want:   ownership.Decision{Applied: map[string]time.Time{ownership.Address: noon}},
		},
		{
			name:   "newer: an unreadable EVN-2 falls back to MSH-7",
			rules:  map[string]ownership.Rule{ownership.Address: {Owners: ehr, Newer: true}},
			ev:     func() *avro.ClinicalEvent { ev := update("ADT"); ev.Provenance.EventTime = "x"; return ev },
			source: "ehr",
			last:   map[string]time.Time{ownership.Address: before},
			want:   ownership.Decision{Applied: map[string]time.Time{ownership.Address: noon.Add(time.Second)}},
		},
		{
			name:   "whole message: a result from a non-owner is withheld, untouched",
			rules:  map[string]ownership.Rule{ownership.Results: {Owners: []string{"lab-results"}}},
			ev:     func() *avro.ClinicalEvent { return update("ORU") },
			source: "ehr",
			want:   ownership.Decision{Stripped: []string{ownership.Results}, Withheld: true},
		},
		{
			name:   "whole message: an order from its owner",
			rules:  map[string]ownership.Rule{ownership.Orders: {Owners: ehr, Newer: true}},
			ev:     func() *avro.ClinicalEvent { return update("ORM") },
			source: "ehr",
			want:   ownership.Decision{Applied: map[string]time.Time{ownership.Orders: noon}},
		},
		{
			name:   "whole message: stale withholds",
			rules:  map[string]ownership.Rule{ownership.Orders: {Owners: ehr, Newer: true}},
			ev:     func() *avro.ClinicalEvent { return update("OML") },
			source: "ehr",
			last:   map[string]time.Time{ownership.Orders: after},
			want:   ownership.Decision{Stale: []string{ownership.Orders}, Withheld: true},
		},
		{
			// The lab's ORR^O02 answers the EHR's order: withholding it
			// would cut the return path.
			name:   "an order response is not an order",
			rules:  map[string]ownership.Rule{ownership.Orders: {Owners: ehr}},
			ev:     func() *avro.ClinicalEvent { return update("ORR") },
			source: "lab-results",
		},
		{
			name:   "an ADT is not an order",
			rules:  map[string]ownership.Rule{ownership.Orders: {Owners: ehr}, ownership.Appointments: {Owners: ehr}},
			ev:     func() *avro.ClinicalEvent { return update("ADT") },
			source: "portal-updates",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, want := tc.ev(), tc.ev()
			if tc.changed != nil {
				tc.changed(want)
			}
			var last func(string) (time.Time, bool)
			if tc.last != nil {
				last = lastAt(tc.last)
			}
			got := matrix(t, tc.rules).Apply(ev, tc.source, last)
			for f := range got.Applied {
				if got.Fingerprints[f] == "" && !ownership.Whole(f) {
					t.Errorf("%s applied without a fingerprint of its value", f)
				}
			}
			got.Fingerprints = nil // TestApplyKnown
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decision\n got  %+v\n want %+v", got, tc.want)
			}
			if !reflect.DeepEqual(ev, want) {
				t.Errorf("event after Apply\n got  %+v\n want %+v", ev, want)
			}
		})
	}
}

type known map[string]string

func (k known) Last(string) (time.Time, bool) { return time.Time{}, false }
func (k known) Fingerprint(f string) (string, bool) {
	v, ok := k[f]
	return v, ok
}

// TestApplyKnown: a non-owner that repeats the value last applied (the
// portal sending the name the EHR gave) is not updating the field, so a
// strip or review rule leaves it alone; another value is an update.
func TestApplyKnown(t *testing.T) {
	m := matrix(t, map[string]ownership.Rule{
		ownership.Name:    {Owners: []string{"ehr"}, Others: ownership.Review},
		ownership.Address: {Owners: []string{"ehr"}, Others: ownership.Strip},
	})
	fromEHR := m.ApplyKnown(update("ADT"), "ehr", known{})
	if fromEHR.Fingerprints[ownership.Name] == "" || fromEHR.Fingerprints[ownership.Address] == "" {
		t.Fatalf("the owner's update has no fingerprints: %+v", fromEHR)
	}
	same := m.ApplyKnown(update("ADT"), "portal-updates", known(fromEHR.Fingerprints))
	if len(same.Review) != 0 || len(same.Stripped) != 0 {
		t.Errorf("the portal repeating the record: %+v, want nothing held or stripped", same)
	}
	moved := update("ADT")
	moved.Patient.Addresses[0].Street = "2 Low St"
	d := m.ApplyKnown(moved, "portal-updates", known(fromEHR.Fingerprints))
	if len(d.Stripped) != 1 || d.Stripped[0] != ownership.Address || len(d.Review) != 0 {
		t.Errorf("the portal's new address: %+v, want the address stripped, the name passed", d)
	}
}

// TestNilMatrix: no matrix governs nothing and changes nothing.
func TestNilMatrix(t *testing.T) {
	var m *ownership.Matrix
	ev := update("ADT")
	if d := m.Apply(ev, "anyone", nil); !reflect.DeepEqual(d, ownership.Decision{}) {
		t.Errorf("nil matrix decided %+v", d)
	}
	if !reflect.DeepEqual(ev, update("ADT")) {
		t.Error("nil matrix changed the event")
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name  string
		rules map[string]ownership.Rule
		ok    bool
	}{
		{"every field", func() map[string]ownership.Rule {
			r := map[string]ownership.Rule{}
			for _, f := range ownership.Fields() {
				r[f] = ownership.Rule{Owners: []string{"ehr"}}
			}
			return r
		}(), true},
		{"unknown field", map[string]ownership.Rule{"demographics.adress": {Owners: []string{"ehr"}}}, false},
		{"unknown others", map[string]ownership.Rule{ownership.Sex: {Owners: []string{"ehr"}, Others: "drop"}}, false},
		{"no owners", map[string]ownership.Rule{ownership.Sex: {Others: ownership.Accept}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ownership.New("1", tc.rules)
			if (err == nil) != tc.ok {
				t.Errorf("New: err = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
