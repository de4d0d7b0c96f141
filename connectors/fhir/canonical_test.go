package fhir

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"

	"github.com/careflow-health/careflow/avro"
)

// inSystems is an estate with its own MRN, lab accession and order
// number systems.
func inSystems() *Systems {
	return NewSystems(map[string]string{
		"HOSP": "https://trust.example.org/Id/mrn",
		"LAB":  "https://lab.example.org/Id/accession",
		"EHR":  "https://ehr.example.org/Id/orders",
	})
}

// inPatientJSON is the Patient the other resources' subject Patient/p1 names.
const inPatientJSON = `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2024-03-08T14:00:00Z"},
 "identifier":[
  {"system":"https://trust.example.org/Id/mrn","value":"H100234","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]}},
  {"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}],
 "name":[{"use":"maiden","family":"OLDNAME"},{"use":"official","family":"HARPER","given":["CALDER","J"]}],
 "gender":"female","birthDate":"1980-02",
 "address":[{"use":"work","line":["1 Quarry Hill","Unit 2"],"city":"Exampleton","state":"EX","postalCode":"EX9 4AB","country":"GBR"}],
 "telecom":[{"system":"email","value":"c@example.org"},{"system":"phone","use":"home","value":"01632 960002"}]}`

// inPatientWant is inPatientJSON as canonical.
func inPatientWant() avro.Patient {
	return avro.Patient{
		Identifiers: []avro.Identifier{
			{Value: "H100234", AssigningAuthority: "HOSP", TypeCode: "MR"},
			{Value: "9990000018", AssigningAuthority: "NHS"},
		},
		FamilyName: "HARPER", GivenNames: []string{"CALDER", "J"}, BirthDate: "198002", Sex: "F",
		Addresses: []avro.Address{{Street: "1 Quarry Hill", Other: "Unit 2", City: "Exampleton", State: "EX", PostalCode: "EX9 4AB", Country: "GBR", Type: "B"}},
		Telecoms:  []avro.Telecom{{Value: "c@example.org", Use: "NET", Equipment: "Internet"}, {Value: "01632 960002", Use: "PRN", Equipment: "PH"}},
	}
}

const inRequestJSON = `{"resourceType":"ServiceRequest","id":"sr1","status":"active","intent":"order","priority":"stat",
 "identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"PLAC"}]},"system":"urn:oid:1.2.3","value":"P123"}],
 "code":{"coding":[{"system":"http://loinc.org","code":"24331-1","display":"Lipid panel"}]},
 "subject":{"reference":"Patient/p1"},"authoredOn":"2024-03-08","requester":{"reference":"Practitioner/dr1"}}`

// inRequestWant is requestJSON's order, but for ORC-1.
func inRequestWant(control, status string) avro.Order {
	return avro.Order{Control: control, Status: status, PlacerOrderNumber: "P123", PlacerUniversalID: "1.2.3", PlacerUniversalIDType: "ISO",
		ServiceCode: "24331-1", ServiceText: "Lipid panel", ServiceSystem: "LN", Priority: "S", OrderedAt: "20240308", OrderingProvider: "dr1"}
}

const inGlucoseJSON = `{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/p1"},
 "basedOn":[{"reference":"ServiceRequest/sr1"}],
 "code":{"coding":[{"system":"http://lab.example.org/codes","code":"GLU","display":"Glucose"},
  {"system":"http://loinc.org","code":"2345-7","display":"Glucose [Mass/volume] in Serum or Plasma"}]},
 "valueQuantity":{"value":6.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"},
 "interpretation":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"H"}]}],
 "referenceRange":[{"low":{"value":3.9},"high":{"value":5.5}}],
 "effectiveDateTime":"2024-03-08T14:00:00+01:00"}`

const inReportBundle = `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:p","resource":` + inPatientJSON + `,"request":{"method":"PUT","url":"Patient/p1"}},
 {"fullUrl":"urn:uuid:o1","resource":{"resourceType":"Observation","status":"preliminary","code":{"text":"Comment"},
  "subject":{"reference":"urn:uuid:p"},"valueString":"see report"},"request":{"method":"POST","url":"Observation"}},
 {"fullUrl":"urn:uuid:r","resource":{"resourceType":"DiagnosticReport","status":"final",
  "identifier":[{"system":"https://lab.example.org/Id/accession","value":"F555"}],
  "basedOn":[{"identifier":{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"PLAC"}]},
   "system":"https://ehr.example.org/Id/orders","value":"P9"}}],
  "code":{"coding":[{"system":"http://loinc.org","code":"24331-1"}],"text":"Lipid panel"},
  "subject":{"reference":"urn:uuid:p"},"effectiveDateTime":"2024-03-08T09:30:00Z",
  "result":[{"reference":"urn:uuid:o2"},{"reference":"urn:uuid:o1"}]},"request":{"method":"POST","url":"DiagnosticReport"}},
 {"fullUrl":"urn:uuid:o2","resource":{"resourceType":"Observation","status":"corrected","code":{"text":"Culture"},
  "subject":{"reference":"urn:uuid:p"},"effectivePeriod":{"start":"2024-03-08T09:00:00Z"},
  "valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"260385009","display":"Negative"}]}},
  "request":{"method":"POST","url":"Observation"}},
 {"fullUrl":"urn:uuid:o3","resource":{"resourceType":"Observation","status":"final","code":{"text":"HDL"},
  "subject":{"reference":"urn:uuid:p"},"valueQuantity":{"value":1.2,"unit":"mmol/L"}},"request":{"method":"POST","url":"Observation"}}]}`

const inEncounterJSON = `{"resourceType":"Encounter","id":"e1","status":"in-progress",
 "class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"},
 "identifier":[{"value":"ACC1"},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"VN"}]},"value":"V100"}],
 "subject":{"reference":"Patient/p1"},
 "participant":[{"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"ATND"}]}],
  "individual":{"reference":"Practitioner/d1"}}],
 "period":{"start":"2024-03-08T09:00:00Z"},
 "location":[
  {"location":{"display":"Ward 7"},"physicalType":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/location-physical-type","code":"wa"}]}},
  {"location":{"display":"Bed 3"},"physicalType":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/location-physical-type","code":"bd"}]}},
  {"location":{"reference":"Location/ed","display":"ED"},"status":"completed"}]}`

func inEncounterWant() *avro.Encounter {
	return &avro.Encounter{VisitNumber: "V100", PatientClass: "I", PointOfCare: "Ward 7", Bed: "Bed 3", AttendingDoctor: "d1",
		AdmitTime: "20240308090000", PriorPointOfCare: "ED"}
}

const inAllergyJSON = `{"resourceType":"AllergyIntolerance","id":"a1","category":["medication"],"criticality":"high",
 "code":{"coding":[{"system":"http://snomed.info/sct","code":"373270004","display":"Penicillin"}]},
 "patient":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000018"}},
 "reaction":[{"manifestation":[{"text":"Hives"},{"coding":[{"system":"http://snomed.info/sct","code":"56018004","display":"Wheeze"}]}],"severity":"moderate"}]}`

const inAppointmentJSON = `{"resourceType":"Appointment","id":"ap1","status":"arrived","start":"2024-03-08T10:00:00Z","end":"2024-03-08T10:30:00Z",
 "participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"},
  {"actor":{"reference":"Practitioner/d2"},"status":"accepted"},
  {"actor":{"reference":"Location/clinic4","display":"Clinic 4"},"status":"accepted"}]}`

// inEdit replaces old with new in a JSON fixture, failing when old is not in it.
func inEdit(t *testing.T, body, old, new string) string {
	t.Helper()
	if !strings.Contains(body, old) {
		t.Fatalf("fixture lacks %s", old)
	}
	return strings.Replace(body, old, new, 1)
}

func inDecodeAll(t *testing.T, bodies ...string) []Resource {
	t.Helper()
	var out []Resource
	for _, b := range bodies {
		r, err := Decode([]byte(b))
		if err != nil {
			t.Fatalf("Decode: %v\n%s", err, b)
		}
		out = append(out, r)
	}
	return out
}

// Each resource type as the canonical event its v2 message would be,
// compared whole but for provenance (TestCanonicalProvenance).
func TestCanonical(t *testing.T) {
	glucose := avro.Observation{SetID: "1", OrderIndex: 0, ValueType: "NM",
		Code: "2345-7", Text: "Glucose [Mass/volume] in Serum or Plasma", CodingSystem: "LN",
		AltCode: "GLU", AltText: "Glucose", AltCodingSystem: "http://lab.example.org/codes",
		Value: "6.1", Units: "mmol/L", UnitsText: "mmol/L", UnitsSystem: "UCUM",
		ReferenceRange: "3.9-5.5", AbnormalFlags: "H", Status: "F", ObservedAt: "20240308140000+0100"}
	p := inPatientWant()
	tests := []struct {
		name    string
		method  string
		body    string
		related []string
		want    avro.ClinicalEvent
	}{
		{"a Patient created is person_add ADT^A28", MethodCreate, inPatientJSON, nil,
			avro.ClinicalEvent{EventType: "person_add", MessageType: "ADT", TriggerEvent: "A28", Patient: p}},
		{"a Patient updated is person_update ADT^A31", MethodUpdate, inPatientJSON, nil,
			avro.ClinicalEvent{EventType: "person_update", MessageType: "ADT", TriggerEvent: "A31", Patient: p}},
		{"an Observation is a result, its order the ServiceRequest it is based on", MethodCreate, inGlucoseJSON, []string{inPatientJSON, inRequestJSON},
			avro.ClinicalEvent{EventType: "result", MessageType: "ORU", TriggerEvent: "R01", Patient: p,
				Orders: []avro.Order{inRequestWant("RE", "")}, Observations: []avro.Observation{glucose}}},
		{"a DiagnosticReport's transaction: order numbers, results in the report's order, a loose result under it", MethodCreate, inReportBundle, nil,
			avro.ClinicalEvent{EventType: "result", MessageType: "ORU", TriggerEvent: "R01", Patient: p,
				Orders: []avro.Order{{Control: "RE", PlacerOrderNumber: "P9", PlacerNamespace: "EHR", FillerOrderNumber: "F555", FillerNamespace: "LAB",
					ServiceCode: "24331-1", ServiceText: "Lipid panel", ServiceSystem: "LN", ResultStatus: "F", ObservedAt: "20240308093000"}},
				Observations: []avro.Observation{
					{SetID: "1", ValueType: "CWE", Text: "Culture", Value: "260385009^Negative^SCT", Status: "C", ObservedAt: "20240308090000"},
					{SetID: "2", ValueType: "ST", Text: "Comment", Value: "see report", Status: "P"},
					{SetID: "3", ValueType: "NM", Text: "HDL", Value: "1.2", Units: "mmol/L", UnitsText: "mmol/L", Status: "F"},
				}}},
		{"a DiagnosticReport with its results in Related", MethodCreate,
			`{"resourceType":"DiagnosticReport","status":"preliminary","code":{"text":"Glucose"},"subject":{"reference":"Patient/p1"},
			  "identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"FILL"}]},"value":"F1"}],
			  "result":[{"reference":"Observation/o1"}]}`, []string{inPatientJSON, inGlucoseJSON},
			avro.ClinicalEvent{EventType: "result", MessageType: "ORU", TriggerEvent: "R01", Patient: p,
				Orders:       []avro.Order{{Control: "RE", FillerOrderNumber: "F1", ServiceText: "Glucose", ResultStatus: "P"}},
				Observations: []avro.Observation{glucose}}},
		{"a ServiceRequest created active is a new order (NW)", MethodCreate, inRequestJSON, []string{inPatientJSON},
			avro.ClinicalEvent{EventType: "order", MessageType: "ORM", TriggerEvent: "O01", Patient: p, Orders: []avro.Order{inRequestWant("NW", "")}}},
		{"a ServiceRequest updated active is a change (XO)", MethodUpdate, inRequestJSON, []string{inPatientJSON},
			avro.ClinicalEvent{EventType: "order", MessageType: "ORM", TriggerEvent: "O01", Patient: p, Orders: []avro.Order{inRequestWant("XO", "")}}},
		{"a ServiceRequest revoked is a cancel (CA)", MethodUpdate, strings.Replace(inRequestJSON, `"active"`, `"revoked"`, 1), []string{inPatientJSON},
			avro.ClinicalEvent{EventType: "order", MessageType: "ORM", TriggerEvent: "O01", Patient: p, Orders: []avro.Order{inRequestWant("CA", "CA")}}},
		{"an Encounter created in progress is admit ADT^A01", MethodCreate, inEncounterJSON, []string{inPatientJSON},
			avro.ClinicalEvent{EventType: "admit", MessageType: "ADT", TriggerEvent: "A01", Patient: p, Encounter: inEncounterWant()}},
		{"an Encounter updated in progress is update ADT^A08", MethodUpdate, inEncounterJSON, []string{inPatientJSON},
			avro.ClinicalEvent{EventType: "update", MessageType: "ADT", TriggerEvent: "A08", Patient: p, Encounter: inEncounterWant()}},
		{"an Encounter finished is discharge ADT^A03", MethodUpdate,
			strings.Replace(strings.Replace(inEncounterJSON, `"in-progress"`, `"finished"`, 1), `"start":"2024-03-08T09:00:00Z"`, `"start":"2024-03-08T09:00:00Z","end":"2024-03-10T11:15:00Z"`, 1),
			[]string{inPatientJSON},
			avro.ClinicalEvent{EventType: "discharge", MessageType: "ADT", TriggerEvent: "A03", Patient: p, Encounter: func() *avro.Encounter {
				e := inEncounterWant()
				e.DischargeTime = "20240310111500"
				return e
			}()}},
		{"an AllergyIntolerance is the person's AL1 on ADT^A31, its patient by identifier", MethodCreate, inAllergyJSON, nil,
			avro.ClinicalEvent{EventType: "person_update", MessageType: "ADT", TriggerEvent: "A31",
				Patient:   avro.Patient{Identifiers: []avro.Identifier{{Value: "9990000018", AssigningAuthority: "NHS"}}},
				Allergies: []avro.Allergy{{Type: "DA", Code: "373270004", Text: "Penicillin", CodingSystem: "SCT", Severity: "MO", Reaction: "Hives~Wheeze"}}}},
		{"an Appointment arrived is register ADT^A04", MethodUpdate, inAppointmentJSON, []string{inPatientJSON},
			avro.ClinicalEvent{EventType: "register", MessageType: "ADT", TriggerEvent: "A04", Patient: p,
				Encounter: &avro.Encounter{PatientClass: "O", AttendingDoctor: "d2", PointOfCare: "Clinic 4", AdmitTime: "20240308100000"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := inDecodeAll(t, tc.body)[0]
			ev, err := Canonical(Write{Interface: "ehr-fhir", Method: tc.method, Resource: r, Related: inDecodeAll(t, tc.related...)}, inSystems())
			if err != nil {
				t.Fatal(err)
			}
			ev.Provenance = avro.Provenance{}
			if !reflect.DeepEqual(*ev, tc.want) {
				t.Errorf("got\n%+v\nwant\n%+v", *ev, tc.want)
			}
		})
	}
}

// Observation values and statuses row by row (OBX-2, OBX-5, OBX-11).
func TestCanonicalObservationValues(t *testing.T) {
	tests := []struct {
		name, old, new string
		valueType      string
		value          string
		status         string
	}{
		{"a comparator is SN", `"valueQuantity":{"value":6.1,`, `"valueQuantity":{"value":6.1,"comparator":"<",`, "SN", "<^6.1", "F"},
		{"an integer is NM", `"valueQuantity":{"value":6.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}`, `"valueInteger":7`, "NM", "7", "F"},
		{"a boolean is ID", `"valueQuantity":{"value":6.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}`, `"valueBoolean":false`, "ID", "N", "F"},
		{"a range is SN", `"valueQuantity":{"value":6.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}`, `"valueRange":{"low":{"value":1},"high":{"value":5}}`, "SN", "^1^-^5", "F"},
		{"a ratio is SN", `"valueQuantity":{"value":6.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}`, `"valueRatio":{"numerator":{"value":1},"denominator":{"value":128}}`, "SN", "^1^:^128", "F"},
		{"a dateTime is DTM", `"valueQuantity":{"value":6.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}`, `"valueDateTime":"2024-03-01"`, "DTM", "20240301", "F"},
		{"a time is TM", `"valueQuantity":{"value":6.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}`, `"valueTime":"08:30:05"`, "TM", "083005", "F"},
		{"amended is C", `"status":"final"`, `"status":"amended"`, "NM", "6.1", "C"},
		{"entered-in-error is W", `"status":"final"`, `"status":"entered-in-error"`, "NM", "6.1", "W"},
		{"registered is I", `"status":"final"`, `"status":"registered"`, "NM", "6.1", "I"},
		{"unknown is no status", `"status":"final"`, `"status":"unknown"`, "NM", "6.1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := inDecodeAll(t, inEdit(t, inGlucoseJSON, tc.old, tc.new), inPatientJSON, inRequestJSON)
			ev, err := Canonical(Write{Method: MethodCreate, Resource: rs[0], Related: rs[1:]}, inSystems())
			if err != nil {
				t.Fatal(err)
			}
			o := ev.Observations[0]
			if o.ValueType != tc.valueType || o.Value != tc.value || o.Status != tc.status {
				t.Errorf("OBX-2 %q, OBX-5 %q, OBX-11 %q; want %q, %q, %q", o.ValueType, o.Value, o.Status, tc.valueType, tc.value, tc.status)
			}
		})
	}
}

// What careflow cannot map is an *Error at the FHIR element, within the
// Bundle when the write was one, and never quotes the resource.
func TestCanonicalErrors(t *testing.T) {
	noSubject := inEdit(t, inGlucoseJSON, `"subject":{"reference":"Patient/p1"},`, "")
	tests := []struct {
		name, method, body string
		related            []string
		path, source       string
	}{
		{"no subject", MethodCreate, noSubject, nil, "Observation.subject", "PID-3"},
		{"a subject careflow was not given", MethodCreate, inGlucoseJSON, []string{inRequestJSON}, "Observation.subject", "PID-3"},
		{"a basedOn careflow was not given", MethodCreate, inGlucoseJSON, []string{inPatientJSON}, "Observation.basedOn", "ORC-2"},
		{"a value the model has no place for", MethodCreate,
			inEdit(t, inGlucoseJSON, `"valueQuantity":{"value":6.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}`, `"valuePeriod":{"start":"2024-01-01"}`),
			[]string{inPatientJSON, inRequestJSON}, "Observation.valuePeriod", "OBX-5"},
		{"a Patient without an identifier", MethodCreate, `{"resourceType":"Patient","name":[{"family":"HARPER"}]}`, nil, "Patient.identifier", "PID-3"},
		{"a draft order", MethodCreate, strings.Replace(inRequestJSON, `"active"`, `"draft"`, 1), []string{inPatientJSON}, "ServiceRequest.status", "ORC-1"},
		{"a planned encounter (A05, which normalise does not map)", MethodCreate, strings.Replace(inEncounterJSON, `"in-progress"`, `"planned"`, 1),
			[]string{inPatientJSON}, "Encounter.status", "MSH-9"},
		{"a booked appointment", MethodCreate, strings.Replace(inAppointmentJSON, `"arrived"`, `"booked"`, 1), []string{inPatientJSON}, "Appointment.status", "MSH-9"},
		{"a report's result careflow was not given", MethodCreate,
			`{"resourceType":"DiagnosticReport","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"result":[{"reference":"Observation/gone"}]}`,
			[]string{inPatientJSON}, "DiagnosticReport.result[0]", "OBX"},
		{"inside a transaction: the entry's element", MethodCreate,
			inEdit(t, inReportBundle, `"subject":{"reference":"urn:uuid:p"},"effectiveDateTime"`, `"effectiveDateTime"`), nil,
			"Bundle.entry[2].resource.subject", "PID-3"},
		{"a refuted allergy (AL1 cannot say so)", MethodUpdate,
			inEdit(t, inAllergyJSON, `"category"`, `"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"refuted"}]},"category"`),
			nil, "AllergyIntolerance.verificationStatus", "AL1"},
		{"a resolved allergy", MethodUpdate,
			inEdit(t, inAllergyJSON, `"category"`, `"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"resolved"}]},"category"`),
			nil, "AllergyIntolerance.clinicalStatus", "AL1"},
		{"a batch is mapped entry by entry", MethodCreate, strings.Replace(inReportBundle, `"transaction"`, `"batch"`, 1), nil, "Bundle.type", "MSH-9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := inDecodeAll(t, tc.body)[0]
			_, err := Canonical(Write{Method: tc.method, Resource: r, Related: inDecodeAll(t, tc.related...)}, inSystems())
			var fe *Error
			if !errors.As(err, &fe) || fe.Path != tc.path || fe.Source != tc.source {
				t.Fatalf("error %v, want one at %s (%s)", err, tc.path, tc.source)
			}
			for _, secret := range []string{"HARPER", "H100234", "6.1", "Penicillin"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes %q: %v", secret, err)
				}
			}
		})
	}
}

// Provenance names the interface, the FHIR version and the resource
// written; its event time is the resource's meta.lastUpdated.
func TestCanonicalProvenance(t *testing.T) {
	r := inDecodeAll(t, inPatientJSON)[0]
	ev, err := Canonical(Write{Interface: "ehr-fhir", Method: MethodUpdate, Resource: r}, inSystems())
	if err != nil {
		t.Fatal(err)
	}
	want := avro.Provenance{Interface: "ehr-fhir", Version: "4.0.1", EventTime: "20240308140000", MessageTime: "20240308140000",
		ResourceType: "Patient", ResourceID: "p1", ResourceVersion: "3"}
	if !reflect.DeepEqual(ev.Provenance, want) {
		t.Errorf("provenance %+v, want %+v", ev.Provenance, want)
	}
}

func TestCanonicalRoundTrip(t *testing.T) {
	sys := NewSystems(nil)
	pat, err := Patient(demoPatient(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := NewResource(pat)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Canonical(Write{Method: MethodCreate, Resource: pr}, sys)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ev.Patient, *demoPatient()) {
		t.Errorf("patient read back\n got %+v\nwant %+v", ev.Patient, *demoPatient())
	}

	obs, err := Observation(glucose(), Refs{})
	if err != nil {
		t.Fatal(err)
	}
	// The writer leaves the subject to the Bundle (observation.go); give
	// it one, as the Bundle would.
	pat.Id = &dpb.Id{Value: "p1"}
	obs.Subject = &dpb.Reference{Reference: &dpb.Reference_PatientId{PatientId: &dpb.ReferenceId{Value: "p1"}}}
	or, err := NewResource(obs)
	if err != nil {
		t.Fatal(err)
	}
	ev, err = Canonical(Write{Method: MethodCreate, Resource: or, Related: []Resource{pr}}, sys)
	if err != nil {
		t.Fatal(err)
	}
	want := *glucose()
	want.OrderIndex = -1      // no order: the Observation names none
	want.AltCodingSystem = "" // a local system (L) has no URI, so the coding has none
	if len(ev.Observations) != 1 || !reflect.DeepEqual(ev.Observations[0], want) {
		t.Errorf("observation read back\n got %+v\nwant %+v", ev.Observations, want)
	}
}

// The spec's own examples through Canonical, each with every other
// example as Related: the Patient example field by field, and every
// example either an event or an *Error naming an element of it (one the
// canonical model has no place for), never another failure.
func TestCanonicalSpecExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "spec", "valid", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all []Resource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, inDecodeAll(t, string(b))...)
	}
	for i, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			ev, err := Canonical(Write{Method: MethodCreate, Resource: all[i], Related: all}, NewSystems(nil))
			var fe *Error
			var is *Issues
			switch {
			case errors.As(err, &fe):
				if !strings.HasPrefix(fe.Path, all[i].Type()) && !strings.HasPrefix(fe.Path, "Bundle.") {
					t.Errorf("error at %s, not an element of the %s", fe.Path, all[i].Type())
				}
			case errors.As(err, &is):
			case err != nil:
				t.Fatalf("error %v (%T), want an *Error or *Issues", err, err)
			case ev.EventType == "" || len(ev.Patient.Identifiers) == 0:
				t.Errorf("event %q with patient %+v", ev.EventType, ev.Patient)
			}
			t.Logf("%s: %v", filepath.Base(f), err)
		})
	}
	r := inDecodeAll(t, inRead(t, filepath.Join("testdata", "spec", "valid", "Patient-example.json")))[0]
	ev, err := Canonical(Write{Method: MethodCreate, Resource: r}, NewSystems(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := avro.Patient{
		Identifiers: []avro.Identifier{{Value: "12345", AssigningAuthority: "1.2.36.146.595.217.0.1", TypeCode: "MR"}},
		FamilyName:  "Chalmers", GivenNames: []string{"Peter", "James"}, BirthDate: "19741225", Sex: "M",
		Addresses: []avro.Address{{Street: "534 Erewhon St", City: "PleasantVille", State: "Vic", PostalCode: "3999", Type: "H"}},
		Telecoms: []avro.Telecom{{Value: "(03) 5555 6473", Use: "WPN", Equipment: "PH"}, {Value: "(03) 3410 5613", Use: "PRN", Equipment: "CP"},
			{Value: "(03) 5555 8834", Equipment: "PH"}},
	}
	if !reflect.DeepEqual(ev.Patient, want) {
		t.Errorf("Patient-example\n got %+v\nwant %+v", ev.Patient, want)
	}
}

func inRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Canonical of a DiagnosticReport transaction, the normalise hot path
// for FHIR results.
func BenchmarkCanonical(b *testing.B) {
	r, err := Decode([]byte(inReportBundle))
	if err != nil {
		b.Fatal(err)
	}
	sys := inSystems()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Canonical(Write{Method: MethodCreate, Resource: r}, sys); err != nil {
			b.Fatal(err)
		}
	}
}

// A blood pressure panel (vital-signs profile: the value in components)
// is one OBX per component, as v2 sends systolic and diastolic.
func TestCanonicalObservationComponents(t *testing.T) {
	bp := `{"resourceType":"Observation","status":"final",
 "code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure panel"}]},
 "subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990001235"}},
 "effectiveDateTime":"2026-12-03T09:30:00Z",
 "component":[
  {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":128,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
  {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":82,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`
	r := inDecodeAll(t, bp)[0]
	ev, err := Canonical(Write{Interface: "apps", Method: MethodCreate, Resource: r}, inSystems())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range ev.Observations {
		got = append(got, o.SetID+" "+o.Code+"="+o.Value+" "+o.Units+" "+o.Status+" "+o.ObservedAt)
	}
	want := "1 8480-6=128 mm[Hg] F 20261203093000,2 8462-4=82 mm[Hg] F 20261203093000"
	if strings.Join(got, ",") != want {
		t.Errorf("observations\n got %s\nwant %s", strings.Join(got, ","), want)
	}
}
