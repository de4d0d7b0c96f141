package fhir

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	bpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/careflow-health/careflow/avro"
)

// demoSystems is the demo estate's table: its MRNs and applications have
// URIs configured; the NHS number is a default.
func demoSystems() *Systems {
	return NewSystems(map[string]string{
		"HOSP": "https://hospital.example.org/Id/mrn",
		"EHR":  "https://hospital.example.org/Id/ehr-order",
		"LAB":  "https://hospital.example.org/Id/lab-order",
	})
}

// admitEvent is the demo EHR's ADT^A01 (internal/demo/messages.go, adt
// and pv1) as normalise maps it: an inpatient with a bed and a visit
// number. The demo sends no AL1; one is added so the golden file shows
// AL1[AllergyIntolerance] too.
func admitEvent() *avro.ClinicalEvent {
	return &avro.ClinicalEvent{
		EventID: "msg-a01-0001", EventType: "admit", MessageType: "ADT", TriggerEvent: "A01",
		Patient: *demoPatient(),
		Encounter: &avro.Encounter{
			VisitNumber: "V0042", PatientClass: "I", PointOfCare: "WARD-A", Room: "12", Bed: "3",
			Facility: "HOSPITAL", AttendingDoctor: "D1002", AdmitTime: "20240308091500",
		},
		Allergies: []avro.Allergy{{
			Type: "DA", Code: "91936005", Text: "Allergy to penicillin", CodingSystem: "SCT",
			AltCode: "PEN", AltText: "Penicillin", AltCodingSystem: "L", Severity: "SV", Reaction: "Rash~Wheeze",
		}},
		Provenance: avro.Provenance{ControlID: "A01-0001", SendingApplication: "EHR", SendingFacility: "HOSPITAL", EventTime: "20240308091500"},
	}
}

// cbcOrder is the demo EHR's CBC order (messages.go, order): ORC-1 NW,
// ORC-5 SC, ORC-9, ORC-12, OBR-4 in LOINC.
func cbcOrder() avro.Order {
	return avro.Order{
		Control: "NW", PlacerOrderNumber: "ORD-1-000123", PlacerNamespace: "EHR", Status: "SC",
		ServiceCode: "58410-2", ServiceText: "CBC panel - Blood by Automated count", ServiceSystem: "LN",
		OrderedAt: "20240308100000", OrderingProvider: "D1002",
	}
}

// orderEvent is the demo's ORM^O01 for a CBC, with the admitted
// patient's PV1.
func orderEvent() *avro.ClinicalEvent {
	ev := admitEvent()
	ev.EventID, ev.EventType, ev.MessageType, ev.TriggerEvent = "msg-o01-0002", "order", "ORM", "O01"
	ev.Allergies = nil
	ev.Orders = []avro.Order{cbcOrder()}
	ev.Provenance.ControlID, ev.Provenance.EventTime = "O01-0002", "20240308100000"
	return ev
}

// resultEvent is the demo lab's ORU^R01 for that order (messages.go,
// result): PID-3/5/7/8 copied, no PV1, ORC-1 RE and ORC-5 CM with the
// filler number, OBR-7 and OBR-25 F, and three OBX in the lab's own codes
// which the demo's code map (examples/demo/lab-codes.csv) turned to LOINC,
// keeping the lab's as the alternate.
func resultEvent() *avro.ClinicalEvent {
	p := demoPatient()
	o := cbcOrder()
	o.Control, o.Status, o.OrderedAt, o.OrderingProvider = "RE", "CM", "", ""
	o.FillerOrderNumber, o.FillerNamespace = "F1-000456", "LAB"
	o.ObservedAt, o.ResultStatus = "20240308140000", "F"
	obx := func(set, code, text, alt, altText, value, units, rng, flag string) avro.Observation {
		return avro.Observation{
			SetID: set, OrderIndex: 0, ValueType: "NM", Code: code, Text: text, CodingSystem: "LN",
			AltCode: alt, AltText: altText, AltCodingSystem: "L", Value: value, Units: units,
			ReferenceRange: rng, AbnormalFlags: flag, Status: "F", ObservedAt: "20240308140000",
		}
	}
	return &avro.ClinicalEvent{
		EventID: "msg-r01-0003", EventType: "result", MessageType: "ORU", TriggerEvent: "R01",
		Patient: avro.Patient{Identifiers: p.Identifiers, FamilyName: p.FamilyName, GivenNames: p.GivenNames, BirthDate: p.BirthDate, Sex: p.Sex},
		Orders:  []avro.Order{o},
		Observations: []avro.Observation{
			obx("1", "6690-2", "Leukocytes [#/volume] in Blood", "WBC", "White cell count", "12.4", "10*3/uL", "4.0-11.0", "H"),
			obx("2", "718-7", "Hemoglobin [Mass/volume] in Blood", "HGB", "Haemoglobin", "13.1", "g/dL", "12.0-17.5", "N"),
			obx("3", "777-3", "Platelets [#/volume] in Blood", "PLT", "Platelets", "212", "10*3/uL", "150-400", "N"),
		},
		Provenance: avro.Provenance{ControlID: "R01-0003", SendingApplication: "LAB", SendingFacility: "HOSPITAL", EventTime: "20240308140000"},
	}
}

// The demo's admit, order and result as transaction Bundles, against
// testdata/bundle-*.json (go test -update rewrites them), read back by
// google/fhir's unmarshaller, every reference an entry's fullUrl.
func TestBundleGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		ev   *avro.ClinicalEvent
	}{
		{"bundle-admit.json", admitEvent()},
		{"bundle-order.json", orderEvent()},
		{"bundle-result.json", resultEvent()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := Bundle(tc.ev, BundleOptions{Systems: demoSystems(), ID: "careflow-" + tc.ev.Provenance.ControlID})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b)
			out, err := TransactionBundle(tc.ev, BundleOptions{Systems: demoSystems(), ID: "careflow-" + tc.ev.Provenance.ControlID})
			if err != nil {
				t.Fatal(err)
			}
			checkReferences(t, out)
		})
	}
}

// checkReferences reads b back with google/fhir and fails for a
// urn:uuid reference that is no entry's fullUrl.
func checkReferences(t *testing.T, b []byte) {
	t.Helper()
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := u.Unmarshal(b)
	if err != nil {
		t.Fatalf("google/fhir refuses the Bundle: %v", err)
	}
	bundle := cr.(*bpb.ContainedResource).GetBundle()
	urls := map[string]bool{}
	for _, e := range bundle.GetEntry() {
		urls[e.GetFullUrl().GetValue()] = true
	}
	for _, ref := range strings.Split(string(b), `"reference":"`)[1:] {
		ref = ref[:strings.IndexByte(ref, '"')]
		if strings.HasPrefix(ref, "urn:uuid:") && !urls[ref] {
			t.Errorf("reference %s is no entry's fullUrl", ref)
		}
	}
}

// The same event renders byte-identical twice, also from a copy built
// apart; another event id changes the fullUrls but not what the entries
// update.
func TestBundleDeterministic(t *testing.T) {
	opts := BundleOptions{Systems: demoSystems(), ID: "c1"}
	a, err := TransactionBundle(resultEvent(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := TransactionBundle(resultEvent(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two renderings of one event differ:\n%s\n%s", a, b)
	}
	other := resultEvent()
	other.EventID = "msg-r01-0099"
	c, err := Bundle(other, opts)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := Bundle(resultEvent(), opts)
	for i, e := range c.GetEntry() {
		if e.GetFullUrl().GetValue() == first.GetEntry()[i].GetFullUrl().GetValue() {
			t.Errorf("entry %d: another event has the same fullUrl", i)
		}
		if search(e) != search(first.GetEntry()[i]) {
			t.Errorf("entry %d: another event of the same result updates %s, not %s", i, search(e), search(first.GetEntry()[i]))
		}
	}
}

// search is what an entry updates or creates if absent: Type?identifier=...
func search(e *bpb.Bundle_Entry) string {
	r := e.GetRequest()
	if q := r.GetIfNoneExist().GetValue(); q != "" {
		return r.GetUrl().GetValue() + "?" + q
	}
	return r.GetUrl().GetValue()
}

// entries is the Bundle's entries by resource type.
func entries(b *bpb.Bundle) map[string][]*bpb.Bundle_Entry {
	out := map[string][]*bpb.Bundle_Entry{}
	for _, e := range b.GetEntry() {
		u := e.GetRequest().GetUrl().GetValue()
		typ, _, _ := strings.Cut(u, "?")
		out[typ] = append(out[typ], e)
	}
	return out
}

// An order, its cancellation and its result are three events of one
// order: they search the same ServiceRequest and the same Patient. The
// order's events PUT the ServiceRequest; the result only creates it if
// absent, and so the Patient and Encounter.
func TestBundleConditionalURLs(t *testing.T) {
	cancel := orderEvent()
	cancel.EventID = "msg-o01-0007"
	cancel.Orders[0].Control, cancel.Orders[0].Status = "CA", ""
	opts := BundleOptions{Systems: demoSystems()}
	var got [3]map[string][]*bpb.Bundle_Entry
	for i, ev := range []*avro.ClinicalEvent{orderEvent(), cancel, resultEvent()} {
		b, err := Bundle(ev, opts)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = entries(b)
	}
	wantSR := "ServiceRequest?identifier=https://hospital.example.org/Id/ehr-order|ORD-1-000123"
	wantPatient := "Patient?identifier=https://hospital.example.org/Id/mrn|H100234"
	for i, name := range []string{"order", "cancel", "result"} {
		if s := search(got[i]["ServiceRequest"][0]); s != wantSR {
			t.Errorf("%s: ServiceRequest searched by %s, want %s", name, s, wantSR)
		}
		if s := search(got[i]["Patient"][0]); s != wantPatient {
			t.Errorf("%s: Patient searched by %s, want %s", name, s, wantPatient)
		}
	}
	for i, want := range []string{"PUT", "PUT", "POST"} {
		if m := got[i]["ServiceRequest"][0].GetRequest().GetMethod().GetValue().String(); m != want {
			t.Errorf("event %d: ServiceRequest %s, want %s", i, m, want)
		}
	}
	if m := got[2]["Patient"][0].GetRequest().GetMethod().GetValue().String(); m != "POST" {
		t.Errorf("a result's Patient is %s, want a conditional create (POST)", m)
	}
	if m := got[0]["Encounter"][0].GetRequest().GetMethod().GetValue().String(); m != "POST" {
		t.Errorf("an order's Encounter is %s, want a conditional create (POST)", m)
	}
	if dr := search(entries(mustBundle(t, resultEvent()))["DiagnosticReport"][0]); dr != "DiagnosticReport?identifier=https://hospital.example.org/Id/lab-order|F1-000456" {
		t.Errorf("the report is searched by %s, want its filler order number", dr)
	}
}

func mustBundle(t *testing.T, ev *avro.ClinicalEvent) *bpb.Bundle {
	t.Helper()
	b, err := Bundle(ev, BundleOptions{Systems: demoSystems()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// What each event type renders: merge links the records both ways and
// retires the prior one; link points at the other record and only
// creates it; unlink, a PUT with no link, removes it; acknowledgments and
// order responses are ErrNotRendered; an unknown type is an error of
// another kind.
func TestBundleEventTypes(t *testing.T) {
	prior := []avro.Identifier{{Value: "H100999", AssigningAuthority: "HOSP", TypeCode: "MR"}}
	event := func(typ string) *avro.ClinicalEvent {
		ev := admitEvent()
		ev.EventType, ev.Encounter, ev.Allergies = typ, nil, nil
		ev.Patient.PriorIdentifiers = prior
		return ev
	}
	tests := []struct {
		typ  string
		want []string // fragments of the JSON, in order
		not  string
	}{
		{"merge", []string{
			`"link":[{"other":{"reference":"urn:uuid:`, `"type":"replaces"}]`,
			`"method":"PUT","url":"Patient?identifier=https://hospital.example.org/Id/mrn|H100999"`, `"active":false`, `"type":"replaced-by"`,
		}, ""},
		{"link", []string{`"type":"seealso"`, `"ifNoneExist":"identifier=https://hospital.example.org/Id/mrn|H100999","method":"POST"`}, `"active"`},
		{"unlink", []string{`"resourceType":"Patient"`}, `"link":[{"other"`},
		{"person_update", []string{`"url":"Patient?identifier=https://hospital.example.org/Id/mrn|H100234"`}, "H100999"},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			b, err := TransactionBundle(event(tc.typ), BundleOptions{Systems: demoSystems()})
			if err != nil {
				t.Fatal(err)
			}
			rest := string(b)
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%s lacks %s (after what came before)", b, w)
				}
				rest = rest[i+len(w):]
			}
			if tc.not != "" && strings.Contains(string(b), tc.not) {
				t.Errorf("%s has %s", b, tc.not)
			}
			checkReferences(t, b)
		})
	}
	for _, typ := range []string{"acknowledgment", "order_response"} {
		if _, err := TransactionBundle(event(typ), BundleOptions{}); !errors.Is(err, ErrNotRendered) {
			t.Errorf("%s: error %v, want ErrNotRendered", typ, err)
		}
	}
	if _, err := TransactionBundle(event("appointment"), BundleOptions{}); err == nil || errors.Is(err, ErrNotRendered) {
		t.Errorf("an unknown event type: error %v, want one that is not ErrNotRendered", err)
	}
}

// A resource careflow cannot identify fails the event at its element and
// v2 field, with ErrNoIdentifier; a PV1 without a visit number is left
// out instead, as it identifies no visit.
func TestBundleNoIdentifier(t *testing.T) {
	tests := []struct {
		name         string
		ev           func() *avro.ClinicalEvent
		path, source string
	}{
		{"no PID-3", func() *avro.ClinicalEvent { ev := admitEvent(); ev.Patient.Identifiers = nil; return ev }, "Patient.identifier", "PID-3"},
		{"first PID-3 without an authority", func() *avro.ClinicalEvent {
			ev := admitEvent()
			ev.Patient.Identifiers[0].AssigningAuthority = ""
			return ev
		}, "Patient.identifier.system", "PID-3.4"},
		{"merge without MRG-1", func() *avro.ClinicalEvent { ev := admitEvent(); ev.EventType = "merge"; return ev }, "Patient.identifier", "MRG-1"},
		{"order without numbers", func() *avro.ClinicalEvent {
			ev := orderEvent()
			ev.Orders[0].PlacerOrderNumber = ""
			return ev
		}, "ServiceRequest.identifier", "ORC-2"},
		{"order number without a namespace", func() *avro.ClinicalEvent {
			ev := orderEvent()
			ev.Orders[0].PlacerNamespace = ""
			return ev
		}, "ServiceRequest.identifier", "ORC-2"},
		{"allergy without an allergen", func() *avro.ClinicalEvent {
			ev := admitEvent()
			ev.Allergies[0] = avro.Allergy{Type: "DA"}
			return ev
		}, "AllergyIntolerance.code", "AL1-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Bundle(tc.ev(), BundleOptions{Systems: demoSystems()})
			var fe *Error
			if !errors.As(err, &fe) || fe.Path != tc.path || fe.Source != tc.source || !errors.Is(err, ErrNoIdentifier) {
				t.Fatalf("error %v, want ErrNoIdentifier at %s from %s", err, tc.path, tc.source)
			}
		})
	}
	ev := admitEvent()
	ev.Encounter.VisitNumber = ""
	if got := entries(mustBundle(t, ev))["Encounter"]; len(got) != 0 {
		t.Errorf("a PV1 without PV1-19 made %d Encounter entries, want none", len(got))
	}
}

// A filler order number alone keys the ServiceRequest; an OBX's
// identifier follows its order and OBX-1, not the event, so a corrected
// result updates the same Observation.
func TestBundleObservationIdentifiers(t *testing.T) {
	first := mustBundle(t, resultEvent())
	corrected := resultEvent()
	corrected.EventID = "msg-r01-0010"
	corrected.Orders[0].ResultStatus = "C"
	corrected.Observations[0].Value, corrected.Observations[0].Status = "11.9", "C"
	second := mustBundle(t, corrected)
	a, b := entries(first)["Observation"], entries(second)["Observation"]
	if len(a) != 3 || len(b) != 3 {
		t.Fatalf("%d and %d Observations, want 3", len(a), len(b))
	}
	seen := map[string]bool{}
	for i := range a {
		if search(a[i]) != search(b[i]) {
			t.Errorf("OBX %d: the correction updates %s, not %s", i+1, search(b[i]), search(a[i]))
		}
		if seen[search(a[i])] {
			t.Errorf("OBX %d: two Observations share %s", i+1, search(a[i]))
		}
		seen[search(a[i])] = true
	}
	fillerOnly := resultEvent()
	fillerOnly.Orders[0].PlacerOrderNumber = ""
	if s := search(entries(mustBundle(t, fillerOnly))["ServiceRequest"][0]); s != "ServiceRequest?identifier=https://hospital.example.org/Id/lab-order|F1-000456" {
		t.Errorf("a ServiceRequest with a filler number alone is searched by %s", s)
	}
}

// Conditional URLs percent-encode what would end or change a search.
func TestKeyQuery(t *testing.T) {
	k := key{"urn:careflow:authority:HOSP", "A&B|C D#1"}
	if got, want := k.query(), "identifier=urn:careflow:authority:HOSP|A%26B%7CC%20D%231"; got != want {
		t.Errorf("query %s, want %s", got, want)
	}
}

// With the estate's trust order, a Patient is keyed by its most trusted
// identifier however the message orders PID-3: the EHR listing its MRN
// first and the lab listing the NHS number first update one Patient.
func TestBundlePatientKeyFollowsTrust(t *testing.T) {
	ehr := resultEvent()
	lab := resultEvent()
	lab.Patient.Identifiers = []avro.Identifier{ehr.Patient.Identifiers[1], ehr.Patient.Identifiers[0]}
	for _, tc := range []struct {
		name  string
		trust []string
		same  bool
	}{
		{"no trust order: the first identifier, so two Patients", nil, false},
		{"NHS trusted first: one Patient", []string{"NHS", "HOSP"}, true},
		{"an authority neither has, then HOSP", []string{"CHI", "hosp"}, true},
	} {
		opts := BundleOptions{Systems: demoSystems(), PatientAuthorities: tc.trust}
		var keys []string
		for _, ev := range []*avro.ClinicalEvent{ehr, lab} {
			b, err := Bundle(ev, opts)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, search(entries(b)["Patient"][0]))
		}
		if (keys[0] == keys[1]) != tc.same {
			t.Errorf("%s: the two messages search %s and %s", tc.name, keys[0], keys[1])
		}
	}
}

// An A28 or A31 is about the person: its PV1 (an admitted patient's, as
// EHRs send it) must not rewrite the visit's Encounter.
func TestBundlePersonEventsLeaveTheEncounter(t *testing.T) {
	for _, et := range []string{"person_update", "person_add", "merge"} {
		ev := admitEvent()
		ev.EventType = et
		if et == "merge" {
			ev.Patient.PriorIdentifiers = []avro.Identifier{{Value: "H9", AssigningAuthority: "HOSP", TypeCode: "MR"}}
		}
		b, err := Bundle(ev, BundleOptions{Systems: demoSystems()})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(entries(b)["Encounter"]); n != 0 {
			t.Errorf("%s wrote %d Encounters", et, n)
		}
	}
	b, err := Bundle(admitEvent(), BundleOptions{Systems: demoSystems()})
	if err != nil || len(entries(b)["Encounter"]) != 1 {
		t.Errorf("the admission itself: %v", err)
	}
}
