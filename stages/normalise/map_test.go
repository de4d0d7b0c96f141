package normalise

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages"
)

// load reads a fixture, written with LF line ends for readability, and
// returns it with the CR segment terminators HL7 uses on the wire.
func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.ReplaceAll(strings.TrimRight(string(b), "\n"), "\n", "\r"))
}

var received = time.Date(2024, 3, 1, 11, 0, 0, 0, time.UTC)

func rawFor(payload []byte) *avro.RawMessage {
	return &avro.RawMessage{
		MessageID: "msg-1", CorrelationID: "cor-1", IdempotencyKey: "idem-1",
		Interface: "ehr", Transport: "mllp", ReceivedAt: received, Payload: payload,
	}
}

func mapFixture(t testing.TB, name string) (*avro.ClinicalEvent, error) {
	t.Helper()
	payload := load(t, name)
	m, err := hl7v2.Parse(payload)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return Map(m, rawFor(payload))
}

func id(v, auth, typ, fac string) avro.Identifier {
	return avro.Identifier{Value: v, AssigningAuthority: auth, TypeCode: typ, AssigningFacility: fac}
}

// same reports a difference between got and want under a field name.
func same(t *testing.T, field string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", field, got, want)
	}
}

func TestMapADT(t *testing.T) {
	tests := []struct {
		file      string
		eventType string
		patient   avro.Patient
		encounter *avro.Encounter
		eventTime string
		obs       int
	}{
		{
			file: "adt_a01_v251.hl7", eventType: EventAdmit, eventTime: "20240301115500", obs: 1,
			patient: avro.Patient{
				Identifiers: []avro.Identifier{id("100234", "NORTHSIDE", "MR", "NSH"), id("9990001112", "NHS", "NH", "")},
				FamilyName:  "van der Berg", GivenNames: []string{"Anna", "Maria"}, BirthDate: "19800214", Sex: "F",
				Addresses: []avro.Address{
					{Street: "12 High St", Other: "Flat 2", City: "Leeds", State: "WYK", PostalCode: "LS1 1AA", Country: "GBR", Type: "H"},
					{Street: "PO Box 9", City: "York", PostalCode: "YO1 7HH", Country: "GBR", Type: "M"},
				},
				// PID-13 with no XTN.1: the number is XTN.6 and XTN.7.
				Telecoms: []avro.Telecom{{Value: "0113 4960000", Use: "PRN", Equipment: "PH"}},
			},
			encounter: &avro.Encounter{VisitNumber: "V555001", PatientClass: "I", PointOfCare: "WARD7", Room: "R12", Bed: "B3", Facility: "NORTHSIDE", AttendingDoctor: "C0042", AdmitTime: "20240301115000"},
		},
		{
			file: "adt_a02_v23.hl7", eventType: EventTransfer, eventTime: "200311020930",
			patient:   avro.Patient{Identifiers: []avro.Identifier{id("55501", "SOUTH", "MR", "")}, FamilyName: "SMITH", GivenNames: []string{"JOHN", "Q"}, BirthDate: "19551201", Sex: "M"},
			encounter: &avro.Encounter{VisitNumber: "V777", PatientClass: "I", PointOfCare: "ICU", Room: "01", Bed: "A", Facility: "SOUTH", AttendingDoctor: "D001", PriorPointOfCare: "WARD3"},
		},
		{
			file: "adt_a03_v24.hl7", eventType: EventDischarge, eventTime: "200506150755",
			patient:   avro.Patient{Identifiers: []avro.Identifier{id("55501", "SOUTH", "MR", "")}, FamilyName: "SMITH", GivenNames: []string{"JOHN"}, BirthDate: "19551201", Sex: "M"},
			encounter: &avro.Encounter{VisitNumber: "V777", PatientClass: "I", PointOfCare: "WARD3", Room: "12", Bed: "2", Facility: "SOUTH", AttendingDoctor: "D001", AdmitTime: "200506100900", DischargeTime: "200506150750"},
		},
		{
			// 2.2: PID-3 is CK (id^check digit^scheme^facility), no type code.
			file: "adt_a04_v22.hl7", eventType: EventRegister, eventTime: "19990101101000",
			patient:   avro.Patient{Identifiers: []avro.Identifier{id("7788", "EAST", "", "")}, FamilyName: "DOE", GivenNames: []string{"JANE"}, BirthDate: "19701010", Sex: "F"},
			encounter: &avro.Encounter{PatientClass: "O", PointOfCare: "CLINIC1"},
		},
		{
			// EVN-1 empty (optional from 2.5) and no trigger lost.
			file: "adt_a08_v25.hl7", eventType: EventUpdate, eventTime: "20240302085900",
			patient: avro.Patient{
				Identifiers: []avro.Identifier{id("100234", "NORTHSIDE", "MR", "")}, FamilyName: "van der Berg", GivenNames: []string{"Anna", "Maria"}, BirthDate: "19800214", Sex: "F",
				Addresses: []avro.Address{{Street: "1 New Rd", City: "Leeds", PostalCode: "LS2 2BB", Country: "GBR", Type: "H"}},
			},
			encounter: &avro.Encounter{VisitNumber: "V555001", PatientClass: "I", PointOfCare: "WARD7", Room: "R12", Bed: "B4", Facility: "NORTHSIDE", AttendingDoctor: "C0042"},
		},
		{
			file: "adt_a11_v25.hl7", eventType: EventCancelAdmit, eventTime: "20240302095900",
			patient:   avro.Patient{Identifiers: []avro.Identifier{id("100234", "NORTHSIDE", "MR", "")}, FamilyName: "van der Berg", GivenNames: []string{"Anna"}},
			encounter: &avro.Encounter{VisitNumber: "V555001", PatientClass: "I", PointOfCare: "WARD7", Room: "R12", Bed: "B4", Facility: "NORTHSIDE"},
		},
		{
			file: "adt_a13_v25.hl7", eventType: EventCancelDischarge, eventTime: "20240303095900",
			patient:   avro.Patient{Identifiers: []avro.Identifier{id("100234", "NORTHSIDE", "MR", "")}, FamilyName: "van der Berg", GivenNames: []string{"Anna"}},
			encounter: &avro.Encounter{VisitNumber: "V555001", PatientClass: "I", PointOfCare: "WARD7", Room: "R12", Bed: "B4", Facility: "NORTHSIDE"},
		},
		{
			// No PV1 at all: no encounter.
			file: "adt_a28_v25.hl7", eventType: EventPersonAdd, eventTime: "20240304075900",
			patient: avro.Patient{Identifiers: []avro.Identifier{id("300400", "REGION", "PI", "")}, FamilyName: "Okafor", GivenNames: []string{"Chidi"}, BirthDate: "20010505", Sex: "M"},
		},
		{
			// A PV1 with only a class still is an encounter.
			file: "adt_a31_v25.hl7", eventType: EventPersonUpdate, eventTime: "20240304080900",
			patient:   avro.Patient{Identifiers: []avro.Identifier{id("300400", "REGION", "PI", "")}, FamilyName: "Okafor", GivenNames: []string{"Chidi", "Emeka"}, BirthDate: "20010505", Sex: "M"},
			encounter: &avro.Encounter{PatientClass: "N"},
		},
		{
			// Two PID/MRG groups: the first is mapped.
			file: "adt_a40_v251.hl7", eventType: EventMerge, eventTime: "20240305115900",
			patient: avro.Patient{
				Identifiers: []avro.Identifier{id("500600", "REGION", "MR", "")}, FamilyName: "Lee", GivenNames: []string{"Min"},
				PriorIdentifiers: []avro.Identifier{id("500601", "REGION", "MR", ""), id("500602", "REGION", "MR", "")},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			ev, err := mapFixture(t, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if ev.EventType != tc.eventType || ev.MessageType != "ADT" {
				t.Errorf("event type = %s (%s^%s), want %s", ev.EventType, ev.MessageType, ev.TriggerEvent, tc.eventType)
			}
			same(t, "patient", ev.Patient, tc.patient)
			same(t, "encounter", ev.Encounter, tc.encounter)
			if ev.Provenance.EventTime != tc.eventTime {
				t.Errorf("event time = %q, want %q", ev.Provenance.EventTime, tc.eventTime)
			}
			if len(ev.Observations) != tc.obs || len(ev.Orders) != 0 {
				t.Errorf("got %d orders, %d observations; want 0, %d", len(ev.Orders), len(ev.Observations), tc.obs)
			}
			if ev.EventID != "msg-1" || ev.CorrelationID != "cor-1" || ev.IdempotencyKey != "idem-1" {
				t.Errorf("identity = %s/%s/%s", ev.EventID, ev.CorrelationID, ev.IdempotencyKey)
			}
		})
	}
}

func TestMapProvenance(t *testing.T) {
	ev, err := mapFixture(t, "adt_a01_v251.hl7")
	if err != nil {
		t.Fatal(err)
	}
	same(t, "provenance", ev.Provenance, avro.Provenance{
		Interface: "ehr", MessageID: "msg-1", ControlID: "MSG00001",
		SendingApplication: "EPIC", SendingFacility: "NORTHSIDE", ReceivingApplication: "CAREFLOW", ReceivingFacility: "REGION",
		Version: "2.5.1", EventTime: "20240301115500", MessageTime: "20240301120000+0100", IngestTime: received,
		AcceptAckType: "AL", AppAckType: "NE",
	})
	// Without EVN the event time is the message time.
	ev, err = mapFixture(t, "orm_o01_v23.hl7")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Provenance.EventTime != "200401011200" || ev.Provenance.MessageTime != "200401011200" {
		t.Errorf("ORM event/message time = %q/%q", ev.Provenance.EventTime, ev.Provenance.MessageTime)
	}
	// Original mode leaves the acknowledgement types empty; enhanced mode
	// keeps MSH-15 and MSH-16 for route's application acknowledgement.
	if ev.Provenance.AcceptAckType != "" || ev.Provenance.AppAckType != "" {
		t.Errorf("original mode: ack types %q/%q, want empty", ev.Provenance.AcceptAckType, ev.Provenance.AppAckType)
	}
	ev, err = mapFixture(t, "oml_o21_enhanced_v251.hl7")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Provenance.AcceptAckType != "AL" || ev.Provenance.AppAckType != "ER" {
		t.Errorf("enhanced mode: ack types %q/%q, want AL/ER", ev.Provenance.AcceptAckType, ev.Provenance.AppAckType)
	}
}

func TestMapOrdersAndResults(t *testing.T) {
	tests := []struct {
		file      string
		eventType string
		orders    []avro.Order
		obs       []avro.Observation
	}{
		{
			file: "orm_o01_v23.hl7", eventType: EventOrder,
			orders: []avro.Order{
				{Control: "NW", PlacerOrderNumber: "PLC100", PlacerNamespace: "CPOE", Status: "SC", ServiceCode: "CBC", ServiceText: "Full blood count", ServiceSystem: "L", Priority: "R", OrderedAt: "200401011155", OrderingProvider: "D010", ObservedAt: "200401011150"},
				// OBR-4.1 "U\T\E" unescapes to "U&E"; ORC-12 wins over OBR-16.
				{Control: "NW", PlacerOrderNumber: "PLC101", PlacerNamespace: "CPOE", Status: "SC", ServiceCode: "U&E", ServiceText: "Urea and electrolytes", ServiceSystem: "L", Priority: "S", OrderedAt: "200401011156", OrderingProvider: "D010", ObservedAt: "200401011150"},
			},
		},
		{
			// TQ1-9 gives the priority in 2.5+.
			file: "oml_o21_v251.hl7", eventType: EventOrder,
			orders: []avro.Order{{Control: "NW", PlacerOrderNumber: "PLC200", PlacerNamespace: "CPOE", Status: "SC", ServiceCode: "24331-1", ServiceText: "Lipid panel", ServiceSystem: "LN", Priority: "R", OrderedAt: "20240307101400", OrderingProvider: "D020", ObservedAt: "20240307100000"}},
		},
		{
			file: "oru_r01_v251.hl7", eventType: EventResult,
			orders: []avro.Order{
				{Control: "RE", PlacerOrderNumber: "PLC200", PlacerNamespace: "CPOE", FillerOrderNumber: "FIL900", FillerNamespace: "LAB", Status: "CM", ServiceCode: "24331-1", ServiceText: "Lipid panel", ServiceSystem: "LN", OrderingProvider: "D020", ResultStatus: "F", ObservedAt: "20240308100000"},
				{PlacerOrderNumber: "PLC201", PlacerNamespace: "CPOE", FillerOrderNumber: "FIL901", FillerNamespace: "LAB", ServiceCode: "2345-7", ServiceText: "Glucose", ServiceSystem: "LN", ResultStatus: "P", ObservedAt: "20240308100000"},
			},
			obs: []avro.Observation{
				{SetID: "1", OrderIndex: 0, ValueType: "NM", Code: "2093-3", Text: "Cholesterol", CodingSystem: "LN", Value: "5.2", Units: "mmol/L", UnitsSystem: "UCUM", ReferenceRange: "<5.0", AbnormalFlags: "H", Status: "F", ObservedAt: "20240308140000"},
				{SetID: "2", OrderIndex: 0, ValueType: "ST", Code: "13457-7", Text: "LDL comment", CodingSystem: "LN", Value: "Result & note: see | below", AbnormalFlags: "N", Status: "F"},
				{SetID: "3", OrderIndex: 0, ValueType: "CWE", Code: "8251-1", Text: "Fasting", CodingSystem: "LN", Value: "Y^Yes^HL70136", Status: "F"},
				{SetID: "1", OrderIndex: 1, ValueType: "NM", Code: "2345-7", Text: "Glucose", CodingSystem: "LN", Value: "6.1~6.3", Units: "mmol/L", ReferenceRange: "3.9-5.5", AbnormalFlags: "H", Status: "P"},
			},
		},
		{
			// OBR without ORC; ED value kept whole.
			file: "oru_r01_ed_v25.hl7", eventType: EventResult,
			orders: []avro.Order{{FillerOrderNumber: "RAD55", FillerNamespace: "PACS", ServiceCode: "RADRPT", ServiceText: "Radiology report", ServiceSystem: "L", ResultStatus: "F", ObservedAt: "20240309085000"}},
			obs:    []avro.Observation{{SetID: "1", OrderIndex: 0, ValueType: "ED", Code: "PDF", Text: "Report", CodingSystem: "L", Value: "PACS^AP^PDF^Base64^JVBERi0xLjQKJcfsj6IKNSAwIG9iago=", Status: "F"}},
		},
		{
			// OBX in an ADT belongs to no order.
			file: "adt_a01_v251.hl7", eventType: EventAdmit,
			obs: []avro.Observation{{SetID: "1", OrderIndex: -1, ValueType: "NM", Code: "3141-9", Text: "Body weight", CodingSystem: "LN", Value: "62.5", Units: "kg", Status: "F"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			ev, err := mapFixture(t, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if ev.EventType != tc.eventType {
				t.Errorf("event type = %s, want %s", ev.EventType, tc.eventType)
			}
			same(t, "orders", ev.Orders, tc.orders)
			same(t, "observations", ev.Observations, tc.obs)
		})
	}
}

func TestMapFailures(t *testing.T) {
	tests := []struct {
		name, payload, code, loc, text string
	}{
		{name: "ADT^A05 not mapped", payload: string(load(t, "adt_a05_v25.hl7")), code: CodeUnmappedType, loc: "MSH-9", text: "ADT^A05"},
		{name: "ACK not mapped", payload: "MSH|^~\\&|A|B|C|D|20240101||ACK^A01|1|P|2.5\rMSA|AA|1", code: CodeUnmappedType, loc: "MSH-9", text: "ACK^A01"},
		{name: "ORU without PID", payload: string(load(t, "oru_r01_nopid_v231.hl7")), code: CodeNoPatient, loc: "PID", text: "ORU^R01"},
		{name: "PID without identifier", payload: strings.Replace(string(load(t, "adt_a28_v25.hl7")), "300400^^^REGION^PI", `""`, 1), code: CodeNoPatient, loc: "PID-3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := hl7v2.Parse([]byte(tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Map(m, rawFor([]byte(tc.payload)))
			var se *stages.Error
			if !errors.As(err, &se) || se.Kind != stages.KindPermanent || ev != nil {
				t.Fatalf("Map = %v, %v; want a permanent error", ev, err)
			}
			if se.Code != tc.code || se.Location != tc.loc || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error = %s at %s (%v), want %s at %s mentioning %q", se.Code, se.Location, err, tc.code, tc.loc, tc.text)
			}
			for _, leak := range []string{"300400", "Okafor", "van der Berg"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error leaks patient data: %v", err)
				}
			}
		})
	}
}

// TestMapTolerance covers what real feeds send: odd delimiters, explicit
// nulls, LF terminators, repeated NTEs and huge values.
func TestMapTolerance(t *testing.T) {
	t.Run("other delimiters", func(t *testing.T) {
		p := "MSH#*@!%#LAB#X#Y#Z#20240101##ORU*R01#9#P#2.4\rPID###42***H*MR##Roe*Ann\rOBR#1###GLU\rOBX#1#NM#GLU##5@6"
		m, err := hl7v2.Parse([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Map(m, rawFor([]byte(p)))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "identifiers", ev.Patient.Identifiers, []avro.Identifier{id("42", "H", "MR", "")})
		if ev.Patient.FamilyName != "Roe" || ev.Observations[0].Value != "5~6" {
			t.Errorf("family %q, value %q", ev.Patient.FamilyName, ev.Observations[0].Value)
		}
	})
	t.Run("explicit nulls and LF", func(t *testing.T) {
		p := "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\nPID|1||7^^^H^MR~^^^H^NH||\"\"^Bo||\"\"|\"\"\nPV1|1|\"\""
		m, err := hl7v2.Parse([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Map(m, rawFor([]byte(p)))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "patient", ev.Patient, avro.Patient{Identifiers: []avro.Identifier{id("7", "H", "MR", "")}, GivenNames: []string{"Bo"}})
		same(t, "encounter", ev.Encounter, &avro.Encounter{})
	})
	t.Run("ORC without OBR starts an order of its own", func(t *testing.T) {
		p := "MSH|^~\\&|A|B|C|D|20240101||ORM^O01|1|P|2.3\rPID|||7^^^H^MR\rORC|NW|P1\rOBR|1|P1||A\rOBX|1|ST|X||a\rORC|CA|P0\rOBX|2|ST|Y||b"
		m, err := hl7v2.Parse([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Map(m, rawFor([]byte(p)))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "orders", ev.Orders, []avro.Order{{Control: "NW", PlacerOrderNumber: "P1", ServiceCode: "A"}, {Control: "CA", PlacerOrderNumber: "P0"}})
		if len(ev.Observations) != 2 || ev.Observations[0].OrderIndex != 0 || ev.Observations[1].OrderIndex != -1 {
			t.Errorf("observations = %+v, want order indexes 0 and -1", ev.Observations)
		}
	})
	t.Run("the sender's alternate codings are kept", func(t *testing.T) {
		p := "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|||7^^^H^MR\rOBR|1|P1||24323-8^CMP^LN^CHEM^Chem panel^L\r" +
			"OBX|1|NM|2345-7^Glucose^LN^GLU^Gluc^L||5.4|mmol/L^millimole per litre^UCUM^MMOL^^L"
		m, err := hl7v2.Parse([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Map(m, rawFor([]byte(p)))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "orders", ev.Orders, []avro.Order{{PlacerOrderNumber: "P1", ServiceCode: "24323-8", ServiceText: "CMP", ServiceSystem: "LN",
			ServiceAltCode: "CHEM", ServiceAltText: "Chem panel", ServiceAltSystem: "L"}})
		same(t, "observations", ev.Observations, []avro.Observation{{SetID: "1", ValueType: "NM",
			Code: "2345-7", Text: "Glucose", CodingSystem: "LN", AltCode: "GLU", AltText: "Gluc", AltCodingSystem: "L", Value: "5.4",
			Units: "mmol/L", UnitsText: "millimole per litre", UnitsSystem: "UCUM", UnitsAltCode: "MMOL", UnitsAltSystem: "L"}})
	})
	t.Run("1 MB OBX-5 and repeated NTE", func(t *testing.T) {
		big := strings.Repeat("QUJD", 1<<18) // 1 MiB of base64
		p := string(load(t, "oru_r01_ed_v25.hl7")) + "\rNTE|1||a\rNTE|2||b\rOBX|2|ED|PDF^Report^L||^AP^PDF^Base64^" + big + "||||||F\rNTE|3||c"
		m, err := hl7v2.Parse([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Map(m, rawFor([]byte(p)))
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Observations) != 2 || ev.Observations[1].Value != "^AP^PDF^Base64^"+big || ev.Observations[1].OrderIndex != 0 {
			t.Errorf("big observation not mapped whole (%d observations)", len(ev.Observations))
		}
	})
}

func BenchmarkMap(b *testing.B) {
	oru := "MSH|^~\\&|LAB|NORTHSIDE|EPIC|NORTHSIDE|20240308143000||ORU^R01^ORU_R01|ORU1|P|2.5.1\r" +
		"PID|1||100234^^^NORTHSIDE^MR||Testperson^Alex||19800214|F\rPV1|1|O|CLINIC2^^^NORTHSIDE\r" +
		"ORC|RE|PLC200^CPOE|FIL900^LAB||CM\rOBR|1|PLC200^CPOE|FIL900^LAB|24331-1^Lipid panel^LN|||20240308100000||||||||||||||||||F\r" +
		strings.Repeat("OBX|1|NM|2093-3^Cholesterol^LN||5.2|mmol/L^^UCUM|<5.0|H|||F|||20240308140000\r", 10)
	for _, bc := range []struct {
		name    string
		payload []byte
	}{
		{"ORU_R01_10_OBX", []byte(oru)},
		{"ADT_A01", load(b, "adt_a01_v251.hl7")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw := rawFor(bc.payload)
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.payload)))
			for b.Loop() {
				m, err := hl7v2.Parse(bc.payload)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Map(m, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
