package render

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages/identity"
)

var renderTime = time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)

func testTarget(version string) Target {
	return Target{
		Format:               avro.FormatHL7v2,
		Version:              version,
		SendingApplication:   "CAREFLOW",
		SendingFacility:      "MAIN",
		ReceivingApplication: "LIS",
		ReceivingFacility:    "LAB",
	}
}

// render renders ev and parses the result back, failing the test on either
// error.
func render(t *testing.T, ev *avro.ClinicalEvent, version string) *hl7v2.Message {
	t.Helper()
	out, err := HL7(ev, testTarget(version), "CTRL0001", renderTime)
	if err != nil {
		t.Fatalf("HL7: %v", err)
	}
	m, err := hl7v2.Parse(out)
	if err != nil {
		t.Fatalf("rendered message does not parse: %v\n%s", err, out)
	}
	return m
}

func segmentNames(m *hl7v2.Message) string {
	var names []string
	for _, s := range m.Segments() {
		names = append(names, s.Name())
	}
	return strings.Join(names, " ")
}

func TestHL7Structure(t *testing.T) {
	tests := []struct {
		name     string
		ev       *avro.ClinicalEvent
		version  string
		msh9     string
		segments string
	}{
		{"admit 2.5.1", adtEvent("A01", "admit"), "2.5.1", "ADT^A01^ADT_A01", "MSH EVN PID PV1"},
		{"admit 2.3 has no MSH-9.3", adtEvent("A01", "admit"), "2.3", "ADT^A01", "MSH EVN PID PV1"},
		{"admit 2.3.1", adtEvent("A01", "admit"), "2.3.1", "ADT^A01^ADT_A01", "MSH EVN PID PV1"},
		{"transfer", adtEvent("A02", "transfer"), "2.5.1", "ADT^A02^ADT_A02", "MSH EVN PID PV1"},
		{"discharge", adtEvent("A03", "discharge"), "2.5.1", "ADT^A03^ADT_A03", "MSH EVN PID PV1"},
		{"register", adtEvent("A04", "register"), "2.5.1", "ADT^A04^ADT_A01", "MSH EVN PID PV1"},
		{"update", adtEvent("A08", "update"), "2.5.1", "ADT^A08^ADT_A01", "MSH EVN PID PV1"},
		{"cancel admit", adtEvent("A11", "cancel_admit"), "2.5.1", "ADT^A11^ADT_A09", "MSH EVN PID PV1"},
		{"person add without encounter gets PV1 class N", withoutEncounter(adtEvent("A28", "person_add")), "2.5.1", "ADT^A28^ADT_A05", "MSH EVN PID PV1"},
		{"merge 2.5.1", mergeEvent(), "2.5.1", "ADT^A40^ADT_A39", "MSH EVN PID MRG"},
		{"merge 2.3", mergeEvent(), "2.3", "ADT^A40", "MSH EVN PID MRG"},
		{"merge patient id only (A34)", withTrigger(mergeEvent(), "A34"), "2.5.1", "ADT^A34^ADT_A30", "MSH EVN PID MRG"},
		{"link: the other patient is a second PID", linkEvent("A24", "link"), "2.5.1", "ADT^A24^ADT_A24", "MSH EVN PID PID"},
		{"unlink", linkEvent("A37", "unlink"), "2.5.1", "ADT^A37^ADT_A37", "MSH EVN PID PID"},
		{"order", orderEvent(), "2.5.1", "ORM^O01^ORM_O01", "MSH PID PV1 ORC OBR"},
		{"result 2.5.1", resultEvent(), "2.5.1", "ORU^R01^ORU_R01", "MSH PID ORC OBR OBX OBX ORC OBR OBX OBX"},
		{"result 2.3", resultEvent(), "2.3", "ORU^R01", "MSH PID ORC OBR OBX OBX ORC OBR OBX OBX"},
		{"unknown structure is left out", withTrigger(adtEvent("A99", "update"), "A99"), "2.5.1", "ADT^A99", "MSH EVN PID PV1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.ev, tc.version)
			if got := m.Get("MSH-9"); got != tc.msh9 {
				t.Errorf("MSH-9 = %q, want %q", got, tc.msh9)
			}
			if got := segmentNames(m); got != tc.segments {
				t.Errorf("segments = %q, want %q", got, tc.segments)
			}
			h := m.Header()
			if h.Version != tc.version || h.ControlID != "CTRL0001" || h.ProcessingID != "P" {
				t.Errorf("MSH-12/10/11 = %q/%q/%q", h.Version, h.ControlID, h.ProcessingID)
			}
			if h.Charset != "UNICODE UTF-8" {
				t.Errorf("MSH-18 = %q, want UNICODE UTF-8 (the default, declared from 2.3 on)", h.Charset)
			}
			if h.DateTime != "20240304050607+0000" {
				t.Errorf("MSH-7 = %q", h.DateTime)
			}
			if h.SendingApplication != "CAREFLOW" || h.ReceivingApplication != "LIS" || h.ReceivingFacility != "LAB" {
				t.Errorf("MSH-3..6 = %+v", h)
			}
			checkPID(t, m, &tc.ev.Patient)
			if tc.ev.MessageType == "ADT" {
				if got := m.Get("EVN-1"); got != tc.ev.TriggerEvent {
					t.Errorf("EVN-1 = %q", got)
				}
				if got := m.Get("EVN-2"); got != tc.ev.Provenance.EventTime {
					t.Errorf("EVN-2 = %q", got)
				}
			}
			if e := tc.ev.Encounter; e != nil {
				checkPV1(t, m, e)
			}
		})
	}
}

func linkEvent(trigger, eventType string) *avro.ClinicalEvent {
	ev := mergeEvent()
	ev.TriggerEvent, ev.EventType = trigger, eventType
	return ev
}

func withoutEncounter(ev *avro.ClinicalEvent) *avro.ClinicalEvent { ev.Encounter = nil; return ev }
func withTrigger(ev *avro.ClinicalEvent, tr string) *avro.ClinicalEvent {
	ev.TriggerEvent = tr
	return ev
}

func checkPID(t *testing.T, m *hl7v2.Message, p *avro.Patient) {
	t.Helper()
	for i, id := range p.Identifiers {
		r := "PID-3[" + strconv.Itoa(i+1) + "]"
		for _, c := range []struct{ path, want string }{
			{r + ".1", id.Value}, {r + ".4", id.AssigningAuthority}, {r + ".5", id.TypeCode}, {r + ".6", id.AssigningFacility},
		} {
			if got := m.Get(c.path); got != c.want {
				t.Errorf("%s = %q, want %q", c.path, got, c.want)
			}
		}
	}
	if f, _ := m.Field("PID-3"); f.Reps() != len(p.Identifiers) {
		t.Errorf("PID-3 has %d repetitions, want %d", f.Reps(), len(p.Identifiers))
	}
	want := map[string]string{
		"PID-5.1": p.FamilyName, "PID-5.2": p.GivenNames[0], "PID-5.3": strings.Join(p.GivenNames[1:], " "),
		"PID-7": p.BirthDate, "PID-8": p.Sex,
		"PID-11.1": p.Addresses[0].Street, "PID-11.3": p.Addresses[0].City,
		"PID-11.5": p.Addresses[0].PostalCode, "PID-11.6": p.Addresses[0].Country, "PID-11.7": p.Addresses[0].Type,
	}
	for path, w := range want {
		if got := m.Get(path); got != w {
			t.Errorf("%s = %q, want %q", path, got, w)
		}
	}
	if pids := m.SegmentsNamed("PID"); len(pids) > 1 {
		// A link or unlink: the other patient is the second PID.
		for i, id := range p.PriorIdentifiers {
			r := pids[1].Field(3).Rep(i + 1)
			if r.Component(1).String() != id.Value || r.Component(4).String() != id.AssigningAuthority {
				t.Errorf("second PID-3[%d] = %q^%q, want %s^%s", i+1, r.Component(1).String(), r.Component(4).String(), id.Value, id.AssigningAuthority)
			}
		}
		return
	}
	for i, id := range p.PriorIdentifiers {
		r := "MRG-1[" + strconv.Itoa(i+1) + "]"
		if got := m.Get(r + ".1"); got != id.Value {
			t.Errorf("%s.1 = %q, want %q", r, got, id.Value)
		}
		if got := m.Get(r + ".4"); got != id.AssigningAuthority {
			t.Errorf("%s.4 = %q, want %q", r, got, id.AssigningAuthority)
		}
	}
}

func checkPV1(t *testing.T, m *hl7v2.Message, e *avro.Encounter) {
	t.Helper()
	want := map[string]string{
		"PV1-2": e.PatientClass, "PV1-3.1": e.PointOfCare, "PV1-3.2": e.Room, "PV1-3.3": e.Bed,
		"PV1-3.4": e.Facility, "PV1-7.1": e.AttendingDoctor, "PV1-19.1": e.VisitNumber,
		"PV1-44": e.AdmitTime, "PV1-45": e.DischargeTime, "PV1-6.1": e.PriorPointOfCare,
	}
	for path, w := range want {
		if got := m.Get(path); got != w {
			t.Errorf("%s = %q, want %q", path, got, w)
		}
	}
}

func TestHL7NoEncounterPV1(t *testing.T) {
	m := render(t, withoutEncounter(adtEvent("A08", "update")), "2.5.1")
	if got := m.Get("PV1-2"); got != "N" {
		t.Errorf("PV1-2 = %q, want N (required PV1 without an encounter)", got)
	}
	m = render(t, mergeEvent(), "2.5.1")
	if _, ok := m.Segment("PV1"); ok {
		t.Error("ADT_A39 without encounter has a PV1; it is optional there")
	}
}

func TestHL7Orders(t *testing.T) {
	ev := resultEvent()
	m := render(t, ev, "2.5.1")
	for i, o := range ev.Orders {
		n := "[" + strconv.Itoa(i+1) + "]"
		want := map[string]string{
			"ORC" + n + "-1": o.Control, "ORC" + n + "-2.1": o.PlacerOrderNumber, "ORC" + n + "-3.1": o.FillerOrderNumber,
			"OBR" + n + "-1": strconv.Itoa(i + 1), "OBR" + n + "-4.1": o.ServiceCode, "OBR" + n + "-4.2": o.ServiceText,
			"OBR" + n + "-4.3": o.ServiceSystem, "OBR" + n + "-7": o.ObservedAt, "OBR" + n + "-25": o.ResultStatus,
		}
		for path, w := range want {
			if got := m.Get(path); got != w {
				t.Errorf("%s = %q, want %q", path, got, w)
			}
		}
	}
	// OBX order in the message: the two of order 0, then order 1's, then
	// the unattached one after the last order.
	wantOBX := []int{0, 1, 2, 3}
	for k, i := range wantOBX {
		o := ev.Observations[i]
		n := "OBX[" + strconv.Itoa(k+1) + "]"
		want := map[string]string{
			n + "-1": o.SetID, n + "-2": o.ValueType, n + "-3.1": o.Code, n + "-3.2": o.Text, n + "-3.3": o.CodingSystem,
			n + "-6.1": o.Units, n + "-7": o.ReferenceRange, n + "-8": o.AbnormalFlags, n + "-11": o.Status, n + "-14": o.ObservedAt,
		}
		for path, w := range want {
			if got := m.Get(path); got != w {
				t.Errorf("%s = %q, want %q", path, got, w)
			}
		}
	}
	// "see note~repeat in 24h" goes back out as two repetitions.
	f, _ := m.Field("OBX[3]-5")
	if f.Reps() != 2 || f.Rep(1).String() != "see note" || f.Rep(2).String() != "repeat in 24h" {
		t.Errorf("OBX[3]-5 = %q with %d repetitions, want 2", f.Raw(), f.Reps())
	}

	// The order event carries ORC-1 NW and the priority in OBR-27.6.
	om := render(t, orderEvent(), "2.5.1")
	if got := om.Get("ORC-1"); got != "NW" {
		t.Errorf("ORC-1 = %q", got)
	}
	if got := om.Get("OBR-27.6"); got != "R" {
		t.Errorf("OBR-27.6 = %q", got)
	}
	if got := om.Get("ORC-9"); got != "20240102030000" {
		t.Errorf("ORC-9 = %q", got)
	}

	// Every EI component goes back out (issue 10: ORC-2 "RP1^TRAKCARE"
	// reached the lab as "RP1", which is unique only within TRAKCARE).
	ei := orderEvent()
	o := &ei.Orders[0]
	o.PlacerOrderNumber, o.PlacerNamespace, o.PlacerUniversalID, o.PlacerUniversalIDType = "RP1", "TRAKCARE", "1.2.826.0.1.99", "ISO"
	o.FillerOrderNumber, o.FillerNamespace = "F77", "LIMS"
	em := render(t, ei, "2.5.1")
	for _, seg := range []string{"ORC", "OBR"} {
		if got := em.Get(seg + "-2"); got != "RP1^TRAKCARE^1.2.826.0.1.99^ISO" {
			t.Errorf("%s-2 = %q, want the whole placer EI", seg, got)
		}
		if got := em.Get(seg + "-3"); got != "F77^LIMS" {
			t.Errorf("%s-3 = %q, want the whole filler EI", seg, got)
		}
	}
}

func TestHL7ObservationValues(t *testing.T) {
	tests := []struct {
		name, valueType, value string
		checks                 map[string]string
	}{
		{"text with delimiters is escaped", "ST", `a|b^c&d\e`, map[string]string{"OBX-5": `a|b^c&d\e`}},
		{"coded value keeps components", "CWE", "LA6576-8^Positive^LN", map[string]string{
			"OBX-5.1": "LA6576-8", "OBX-5.2": "Positive", "OBX-5.3": "LN"}},
		{"coded repetitions", "CE", "A^Alpha~B^Beta", map[string]string{
			"OBX-5[1].2": "Alpha", "OBX-5[2].1": "B", "OBX-5[2].2": "Beta"}},
		{"structured numeric", "SN", ">^10", map[string]string{"OBX-5.1": ">", "OBX-5.2": "10"}},
		{"component with an escape character", "CE", `X\Y^Z`, map[string]string{"OBX-5.1": `X\Y`, "OBX-5.2": "Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := resultEvent()
			ev.Observations = []avro.Observation{{SetID: "1", OrderIndex: 0, ValueType: tc.valueType, Value: tc.value}}
			m := render(t, ev, "2.5.1")
			for path, want := range tc.checks {
				if got := m.Get(path); got != want {
					t.Errorf("%s = %q, want %q", path, got, want)
				}
			}
		})
	}
}

func TestHL7Escaping(t *testing.T) {
	ev := adtEvent("A01", "admit")
	nasty := `O|Brien^Smith&Co~Ltd\X`
	ev.Patient.FamilyName = nasty
	ev.Patient.Identifiers[0].Value = "A^B"
	ev.Encounter.PointOfCare = "W|7"
	out, err := HL7(ev, testTarget("2.5.1"), "CTRL0001", renderTime)
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7v2.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Get("PID-5.1"); got != nasty {
		t.Errorf("PID-5.1 = %q, want %q", got, nasty)
	}
	if got := string(m.GetRaw("PID-5.1")); got != `O\F\Brien\S\Smith\T\Co\R\Ltd\E\X` {
		t.Errorf("PID-5.1 raw = %q, want every delimiter escaped", got)
	}
	if got := m.Get("PID-5.2"); got != "Ada" {
		t.Errorf("PID-5.2 = %q: the escaped family name leaked into the next component", got)
	}
	if got := m.Get("PID-3[1].1"); got != "A^B" {
		t.Errorf("PID-3[1].1 = %q", got)
	}
	if got := m.Get("PV1-3.1"); got != "W|7" {
		t.Errorf("PV1-3.1 = %q", got)
	}
	if got := m.Get("PV1-3.2"); got != "R1" {
		t.Errorf("PV1-3.2 = %q", got)
	}
}

func TestHL7RetryChangesOnlyMSH7(t *testing.T) {
	ev := resultEvent()
	a, err := HL7(ev, testTarget("2.5.1"), identity.ControlID(ev.EventID, "ehr"), renderTime)
	if err != nil {
		t.Fatal(err)
	}
	b, err := HL7(ev, testTarget("2.5.1"), identity.ControlID(ev.EventID, "ehr"), renderTime.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := hl7v2.Parse(a)
	mb, _ := hl7v2.Parse(b)
	if ma.Get("MSH-10") != mb.Get("MSH-10") {
		t.Errorf("MSH-10 changed on retry")
	}
	if ma.Get("MSH-7") == mb.Get("MSH-7") {
		t.Errorf("MSH-7 did not follow the render time")
	}
	strip := func(b []byte) string { _, rest, _ := strings.Cut(string(b), "\r"); return rest }
	if strip(a) != strip(b) {
		t.Errorf("segments after MSH differ between renders")
	}
}

func TestHL7Errors(t *testing.T) {
	tests := []struct {
		name    string
		ev      *avro.ClinicalEvent
		version string
	}{
		{"bad version", adtEvent("A01", "admit"), "two"},
		{"version 3", adtEvent("A01", "admit"), "3.0"},
		{"no trigger", withTrigger(adtEvent("A01", "admit"), ""), "2.5.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := HL7(tc.ev, testTarget(tc.version), "C", renderTime); err == nil {
				t.Error("HL7 succeeded, want an error")
			}
		})
	}
	// The default version and processing id.
	out, err := HL7(adtEvent("A01", "admit"), Target{}, "C", renderTime)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := hl7v2.Parse(out)
	if m.Get("MSH-12") != DefaultVersion || m.Get("MSH-11") != "P" {
		t.Errorf("defaults: MSH-12 %q MSH-11 %q", m.Get("MSH-12"), m.Get("MSH-11"))
	}
}

func BenchmarkRenderHL7(b *testing.B) {
	ev := resultEvent()
	tgt := testTarget("2.5.1")
	id := identity.ControlID(ev.EventID, "ehr")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HL7(ev, tgt, id, renderTime); err != nil {
			b.Fatal(err)
		}
	}
}

// A code map's standard code goes first and the local code it replaced
// second (CWE.4-6); without an alternate the field stays three components.
func TestHL7AlternateCoding(t *testing.T) {
	ev := &avro.ClinicalEvent{
		MessageType: "ORU", TriggerEvent: "R01",
		Patient: avro.Patient{Identifiers: []avro.Identifier{{Value: "P1", AssigningAuthority: "HOSP"}}},
		Orders: []avro.Order{{PlacerOrderNumber: "RP1", ServiceCode: "24323-8", ServiceText: "Comprehensive metabolic panel", ServiceSystem: "LN",
			ServiceAltCode: "CMP", ServiceAltText: "Chem panel", ServiceAltSystem: "L"}},
		Observations: []avro.Observation{
			{SetID: "1", OrderIndex: 0, ValueType: "NM", Code: "2345-7", Text: "Glucose", CodingSystem: "LN",
				AltCode: "GLU", AltText: "Glucose", AltCodingSystem: "L", Value: "5.4",
				Units: "mmol/L", UnitsText: "millimole per litre", UnitsSystem: "UCUM", UnitsAltCode: "MMOL", UnitsAltSystem: "L"},
			{SetID: "2", OrderIndex: 0, ValueType: "NM", Code: "XYZ", Text: "Unmapped", CodingSystem: "L", Value: "1", Units: "U"},
		},
	}
	for _, version := range []string{"2.5.1", "2.3"} {
		m := render(t, ev, version)
		obx := m.SegmentsNamed("OBX")
		obr, _ := m.Segment("OBR")
		tests := []struct{ loc, got, want string }{
			{"OBX[1]-3", string(obx[0].Field(3).Raw()), "2345-7^Glucose^LN^GLU^Glucose^L"},
			{"OBX[1]-6", string(obx[0].Field(6).Raw()), "mmol/L^millimole per litre^UCUM^MMOL^^L"},
			{"OBX[2]-3", string(obx[1].Field(3).Raw()), "XYZ^Unmapped^L"},
			{"OBX[2]-6", string(obx[1].Field(6).Raw()), "U"},
			{"OBR-4", string(obr.Field(4).Raw()), "24323-8^Comprehensive metabolic panel^LN^CMP^Chem panel^L"},
		}
		for _, tt := range tests {
			if tt.got != tt.want {
				t.Errorf("%s %s = %q, want %q", version, tt.loc, tt.got, tt.want)
			}
		}
	}
}
