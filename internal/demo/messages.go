// This file writes the HL7 v2 messages the simulated systems exchange: the
// EHR's ADT and orders, and the lab's results. Every patient is synthetic
// (see patients.go); nothing here comes from a real record.

package demo

import (
	"fmt"
	"strconv"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// Application and facility names the simulated systems use in MSH, matching
// examples/demo/careflow.yaml.
const (
	ehrApp      = "EHR"
	hospital    = "HOSPITAL"
	labApp      = "LAB"
	engineApp   = "CAREFLOW"
	ehrVersion  = "2.5.1"
	labVersion  = "2.5.1"
	authority   = "HOSP" // assigning authority of the demo MRNs
	loinc       = "LN"
	processingP = "P"
)

// structures is MSH-9.3 for each ADT trigger the EHR sends (HL7 2.5.1
// chapter 3 message structures).
var structures = map[string]string{
	"A01": "ADT_A01", "A02": "ADT_A02", "A03": "ADT_A03", "A04": "ADT_A01",
	"A08": "ADT_A01", "A11": "ADT_A09", "A13": "ADT_A01", "A28": "ADT_A05",
	"A31": "ADT_A05", "A40": "ADT_A39",
}

// msh writes the message header. appAck, when given, asks for HL7's
// enhanced mode: MSH-15 AL (the commit ACK) and MSH-16 appAck (AL: an
// application acknowledgement always; ER: only on error).
func msh(b *hl7v2.Builder, from, to, typ, trigger, structure, controlID, version string, now time.Time, appAck ...string) {
	h := hl7v2.Header{
		SendingApplication:   from,
		SendingFacility:      hospital,
		ReceivingApplication: to,
		ReceivingFacility:    hospital,
		DateTime:             hl7v2.FormatTime(now),
		MessageType:          typ,
		TriggerEvent:         trigger,
		MessageStructure:     structure,
		ControlID:            controlID,
		ProcessingID:         processingP,
		Version:              version,
	}
	if len(appAck) > 0 && appAck[0] != "" {
		h.AcceptAckType, h.AppAckType = "AL", appAck[0]
	}
	b.MSH(h)
}

// pid writes the patient identification segment for mrn (which may be a
// duplicate record's MRN, for the A28 that precedes a merge).
func pid(b *hl7v2.Builder, p *patient, mrn string) {
	s := b.Segment("PID").
		Set("1", "1").
		Set("3.1", mrn).Set("3.4", authority).Set("3.5", "MR")
	if mrn == p.mrn {
		// The real record carries the NHS number too; the clerk's
		// duplicate does not (which is how it came to be).
		s.Set("3[2].1", p.nhs).Set("3[2].4", "NHS").Set("3[2].5", "NH")
	}
	s.
		Set("5.1", p.family).Set("5.2", p.given).
		Set("7", p.birthDate).
		Set("8", p.sex).
		Set("11.1", p.street).Set("11.3", p.city).Set("11.5", p.postcode).Set("11.7", "H").
		Set("13.1", p.phone)
}

// pv1 writes the visit segment: inpatient with a bed when admitted,
// outpatient with a clinic visit, or "not applicable" for a person record.
func pv1(b *hl7v2.Builder, p *patient) *hl7v2.SegmentBuilder {
	s := b.Segment("PV1").Set("1", "1")
	switch {
	case p.admitted:
		s.Set("2", "I").
			Set("3.1", p.ward).Set("3.2", p.room).Set("3.3", p.bed).Set("3.4", hospital).
			Set("7.1", p.doctor).
			Set("19.1", p.visit).
			Set("44", p.admitTime)
	case p.visit != "":
		s.Set("2", "O").Set("3.1", "OPD").Set("3.4", hospital).Set("7.1", p.doctor).Set("19.1", p.visit)
	default:
		s.Set("2", "N")
	}
	return s
}

// adt writes an ADT message for trigger about p, as p is after the event.
// mrn is the identifier PID-3 carries: p's own, or the duplicate record's
// for the A28 that precedes a merge.
func adt(p *patient, trigger, mrn, controlID string, now time.Time) []byte {
	b := hl7v2.NewBuilder(hl7v2.DefaultDelimiters)
	msh(b, ehrApp, engineApp, "ADT", trigger, structures[trigger], controlID, ehrVersion, now)
	b.Segment("EVN").Set("1", trigger).Set("2", hl7v2.FormatTime(now))
	pid(b, p, mrn)
	switch trigger {
	case "A40":
		b.Segment("MRG").Set("1.1", p.duplicateMRN).Set("1.4", authority).Set("1.5", "MR")
	case "A02":
		pv1(b, p).Set("6.1", p.priorWard).Set("6.4", hospital)
	case "A03":
		pv1(b, p).Set("45", hl7v2.FormatTime(now))
	default:
		pv1(b, p)
	}
	return b.Bytes()
}

// panel is a lab test the EHR can order and the results the lab returns.
type panel struct {
	code, text string
	analytes   []analyte
}

type analyte struct {
	code, text, units, rangeText string
	low, high                    float64 // reference range, for the abnormal flag
	decimals                     int
}

// labCodes are the lab's own codes for each analyte (system labSystem):
// what it writes in OBX-3, and examples/demo/lab-codes.csv maps to LOINC.
// HDL, TRIG and INR are not in the map, on purpose: they are the demo's
// unmapped_code exceptions.
var labCodes = map[string][2]string{
	"6690-2": {"WBC", "White cell count"},
	"718-7":  {"HGB", "Haemoglobin"},
	"777-3":  {"PLT", "Platelets"},
	"2951-2": {"NA", "Sodium"},
	"2823-3": {"K", "Potassium"},
	"2160-0": {"CREA", "Creatinine"},
	"2345-7": {"GLU", "Glucose"},
	"2093-3": {"CHOL", "Cholesterol"},
	"2085-9": {"HDL", "HDL cholesterol"},
	"2571-8": {"TRIG", "Triglycerides"},
	"5902-2": {"PT", "Prothrombin time"},
	"6301-6": {"INR", "INR"},
}

// labSystem is the coding system of the lab's own codes.
const labSystem = "L"

// panels are LOINC-coded orders with plausible analytes (the lab reports
// them under its own codes, labCodes).
var panels = []panel{
	{"58410-2", "CBC panel - Blood by Automated count", []analyte{
		{"6690-2", "Leukocytes [#/volume] in Blood", "10*3/uL", "4.0-11.0", 4, 11, 1},
		{"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "12.0-17.5", 12, 17.5, 1},
		{"777-3", "Platelets [#/volume] in Blood", "10*3/uL", "150-400", 150, 400, 0},
	}},
	{"51990-0", "Basic metabolic panel - Blood", []analyte{
		{"2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", "135-145", 135, 145, 0},
		{"2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "3.5-5.1", 3.5, 5.1, 1},
		{"2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "0.6-1.3", 0.6, 1.3, 2},
		{"2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", "70-99", 70, 99, 0},
	}},
	{"24331-1", "Lipid panel - Serum or Plasma", []analyte{
		{"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "<200", 100, 200, 0},
		{"2085-9", "HDL Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", ">40", 40, 90, 0},
		{"2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", "<150", 40, 150, 0},
	}},
	{"34714-6", "INR in Blood by Coagulation assay", []analyte{
		{"5902-2", "Prothrombin time (PT)", "s", "11.0-13.5", 11, 13.5, 1},
		{"6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", "0.8-1.1", 0.8, 1.1, 1},
	}},
}

// order writes an ORM^O01 (v2.3-style) or OML^O21 (v2.5-style) new order
// for panel pn.
func order(p *patient, oml bool, placer string, pn panel, controlID string, now time.Time, appAck ...string) []byte {
	typ, trigger, structure := "ORM", "O01", "ORM_O01"
	if oml {
		typ, trigger, structure = "OML", "O21", "OML_O21"
	}
	b := hl7v2.NewBuilder(hl7v2.DefaultDelimiters)
	msh(b, ehrApp, engineApp, typ, trigger, structure, controlID, ehrVersion, now, appAck...)
	pid(b, p, p.mrn)
	pv1(b, p)
	b.Segment("ORC").
		Set("1", "NW").
		Set("2.1", placer).Set("2.2", ehrApp).
		Set("5", "SC").
		Set("9", hl7v2.FormatTime(now)).
		Set("12.1", p.doctor)
	b.Segment("OBR").
		Set("1", "1").
		Set("2.1", placer).Set("2.2", ehrApp).
		Set("4.1", pn.code).Set("4.2", pn.text).Set("4.3", loinc).
		Set("16.1", p.doctor)
	return b.Bytes()
}

// cancel writes the EHR's ORM^O01 cancelling order placer (ORC-1 CA).
func cancel(p *patient, placer string, pn panel, controlID string, now time.Time) []byte {
	b := hl7v2.NewBuilder(hl7v2.DefaultDelimiters)
	msh(b, ehrApp, engineApp, "ORM", "O01", "ORM_O01", controlID, ehrVersion, now)
	pid(b, p, p.mrn)
	pv1(b, p)
	b.Segment("ORC").Set("1", "CA").Set("2.1", placer).Set("2.2", ehrApp).Set("9", hl7v2.FormatTime(now)).Set("12.1", p.doctor)
	b.Segment("OBR").Set("1", "1").Set("2.1", placer).Set("2.2", ehrApp).
		Set("4.1", pn.code).Set("4.2", pn.text).Set("4.3", loinc).Set("16.1", p.doctor)
	return b.Bytes()
}

// result writes the lab's ORU^R01 for the order in m, with OBR-25 and
// OBX-11 status (P preliminary, F final, C corrected): the same patient
// (PID copied as the EHR sent it) and placer order number, the filler
// number, and one OBX per analyte of the ordered panel.
func result(m *hl7v2.Message, filler, controlID, status string, values func(analyte) (string, string), now time.Time) []byte {
	b := hl7v2.NewBuilder(hl7v2.DefaultDelimiters)
	msh(b, labApp, engineApp, "ORU", "R01", "ORU_R01", controlID, labVersion, now)
	ps := b.Segment("PID").Set("1", "1")
	for _, f := range []string{"3", "5", "7", "8"} {
		ps.SetRaw(f, string(m.GetRaw("PID-"+f)))
	}
	placer := m.Get("ORC-2.1")
	if placer == "" {
		placer = m.Get("OBR-2.1")
	}
	ts := hl7v2.FormatTime(now)
	b.Segment("ORC").Set("1", "RE").Set("2.1", placer).Set("2.2", ehrApp).Set("3.1", filler).Set("3.2", labApp).Set("5", orderStatus(status))
	b.Segment("OBR").
		Set("1", "1").
		Set("2.1", placer).Set("2.2", ehrApp).
		Set("3.1", filler).Set("3.2", labApp).
		SetRaw("4", string(m.GetRaw("OBR-4"))).
		Set("7", ts).
		Set("22", ts).
		Set("25", status)
	code := m.Get("OBR-4.1")
	known := false
	for _, pn := range panels {
		known = known || pn.code == code
	}
	if !known {
		// An order for a test this demo lab does not run (sent by hand, say)
		// still gets a final result, as a text note, so it is a valid ORU.
		b.Segment("OBX").Set("1", "1").Set("2", "TX").Set("3.1", code).Set("3.2", m.Get("OBR-4.2")).
			Set("5", "Test not performed by the demo laboratory").Set("11", status).Set("14", ts)
	}
	for _, pn := range panels {
		if pn.code != code {
			continue
		}
		for i, a := range pn.analytes {
			v, flag := values(a)
			local := labCodes[a.code]
			b.Segment("OBX").
				Set("1", strconv.Itoa(i+1)).
				Set("2", "NM").
				Set("3.1", local[0]).Set("3.2", local[1]).Set("3.3", labSystem).
				Set("5", v).
				Set("6.1", a.units).
				Set("7", a.rangeText).
				Set("8", flag).
				Set("11", status).
				Set("14", ts)
		}
	}
	return b.Bytes()
}

// value returns a result for a within or a little outside its reference
// range, and its abnormal flag (N, L or H), from a uniform draw u in [0,1).
func value(a analyte, u float64) (string, string) {
	span := a.high - a.low
	v := a.low - 0.15*span + u*1.3*span
	flag := "N"
	switch {
	case v < a.low:
		flag = "L"
	case v > a.high:
		flag = "H"
	}
	return strconv.FormatFloat(v, 'f', a.decimals, 64), flag
}

// ack answers a message the simulated system received: AA when it parses,
// AR otherwise.
func ack(payload []byte, app string) ([]byte, *hl7v2.Message) {
	m, err := hl7v2.Parse(payload)
	if err != nil {
		h, d := hl7v2.PeekHeader(payload)
		return hl7v2.BuildACK(h, d, hl7v2.AckAR, hl7v2.ACKOptions{
			SendingApplication: app, SendingFacility: hospital,
			Text:   "unparseable message",
			Errors: []hl7v2.AckError{{Code: "100", Text: fmt.Sprintf("parse: %v", err)}},
		}), nil
	}
	return hl7v2.BuildACK(m.Header(), m.Delimiters(), hl7v2.AckAA, hl7v2.ACKOptions{
		SendingApplication: app, SendingFacility: hospital,
	}), m
}

// response writes the lab's ORR^O02 to the order in m: ORC-1 control OK
// (accepted, with the filler number) or UA (unable to accept).
func response(m *hl7v2.Message, filler, controlID, control string, now time.Time) []byte {
	b := hl7v2.NewBuilder(hl7v2.DefaultDelimiters)
	msh(b, labApp, engineApp, "ORR", "O02", "ORR_O02", controlID, labVersion, now)
	b.Segment("MSA").Set("1", "AA").Set("2", m.Get("MSH-10"))
	ps := b.Segment("PID").Set("1", "1")
	for _, f := range []string{"3", "5", "7", "8"} {
		ps.SetRaw(f, string(m.GetRaw("PID-"+f)))
	}
	placer := m.Get("ORC-2.1")
	if placer == "" {
		placer = m.Get("OBR-2.1")
	}
	orc := b.Segment("ORC").Set("1", control).Set("2.1", placer).Set("2.2", ehrApp)
	if control == "OK" {
		orc.Set("3.1", filler).Set("3.2", labApp).Set("5", "SC")
	} else {
		orc.Set("16.2", "Specimen type not available") // ORC-16 order control code reason
	}
	return b.Bytes()
}

// orderStatus is ORC-5 (HL7 table 0038) for a result of OBR-25 status:
// in process while it is preliminary, complete once final or corrected.
func orderStatus(resultStatus string) string {
	if resultStatus == "P" {
		return "IP"
	}
	return "CM"
}
