// This file writes an event as an HL7 v2 message at the destination's
// version. The layout per message structure is in docs/routing.md.

package render

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// DefaultVersion is the HL7 version written when a Target names none.
const DefaultVersion = "2.5.1"

// v231 is the first version with MSH-9.3.
var v231 = version{2, 3, 1}

// v23 is the first version with MSH-18 (character set).
var v23 = version{2, 3, 0}

// HL7 renders ev as an HL7 v2 message for t, with controlID in MSH-10 and
// now in MSH-7. Everything but MSH-7 depends only on ev, t and controlID,
// so a retry resends the same message under the same control id. Values
// are escaped; an observation's "~"-joined value is written back as
// repetitions.
//
// The message is written in t.Charset (default UTF-8), declared in MSH-18
// from 2.3 on ("UNICODE UTF-8", "8859/1"); 2.1 and 2.2 have no MSH-18, so
// the receiver must know the set from its own configuration. A character
// the set cannot hold is a *hl7v2.ParseError with code
// hl7v2.CodeUnrepresentable at its field ("PID-5").
func HL7(ev *avro.ClinicalEvent, t Target, controlID string, now time.Time) ([]byte, error) {
	ver := t.Version
	if ver == "" {
		ver = DefaultVersion
	}
	v, ok := parseVersion(ver)
	if !ok {
		return nil, fmt.Errorf("render hl7: version %q is not an HL7 v2 version such as 2.5.1", ver)
	}
	if ev.MessageType == "" || ev.TriggerEvent == "" {
		return nil, errors.New("render hl7: event has no message type or trigger event")
	}
	structure := Structure(ev.MessageType, ev.TriggerEvent)
	if !v.atLeast(v231) {
		structure = ""
	}
	pid := t.ProcessingID
	if pid == "" {
		pid = "P"
	}
	cs, err := hl7v2.DestinationCharset(t.Charset)
	if err != nil {
		return nil, fmt.Errorf("render hl7: %w", err)
	}
	msh18 := ""
	if v.atLeast(v23) {
		msh18 = cs.MSH18()
	}

	b := hl7v2.NewBuilder(hl7v2.DefaultDelimiters)
	d := b.Delimiters()
	b.MSH(hl7v2.Header{
		SendingApplication:   t.SendingApplication,
		SendingFacility:      t.SendingFacility,
		ReceivingApplication: t.ReceivingApplication,
		ReceivingFacility:    t.ReceivingFacility,
		DateTime:             hl7v2.FormatTime(now),
		MessageType:          ev.MessageType,
		TriggerEvent:         ev.TriggerEvent,
		MessageStructure:     structure,
		ControlID:            controlID,
		ProcessingID:         pid,
		Version:              ver,
		Charset:              msh18,
	})

	if a := ev.Acknowledgment; a != nil {
		// careflow's answer to a sender: MSA and ERR follow MSH (ACK,
		// ORR_O02, ORL_O22 alike).
		b.Segment("MSA").Set("1", a.Code).Set("2", a.ControlID).Set("3", a.Text)
		for _, e := range a.Errors {
			hl7v2.WriteERR(b, ver, hl7v2.AckError{Code: e.Code, Location: e.Location, Severity: e.Severity,
				Text: e.Text, ApplicationCode: e.ApplicationCode})
		}
	}
	if ev.MessageType == "ACK" {
		return finish(b, cs, ev)
	}

	isADT := ev.MessageType == "ADT"
	if isADT {
		evt := ev.Provenance.EventTime
		if evt == "" {
			evt = ev.Provenance.MessageTime
		}
		if evt == "" {
			evt = hl7v2.FormatTime(now) // EVN-2 is required
		}
		b.Segment("EVN").Set("1", ev.TriggerEvent).Set("2", evt)
	}
	// A notification about an order careflow learnt of from a
	// destination's answer may know no patient: ORR_O02's PID is optional.
	if ev.Acknowledgment == nil || !noPatient(&ev.Patient) {
		writePID(b, &ev.Patient)
	}
	// The structure decides which optional segments fit, whatever the
	// version writes in MSH-9.3.
	fits := carries[Structure(ev.MessageType, ev.TriggerEvent)]
	if gp := ev.Patient.GP; fits.pd1 && gp != (avro.Practitioner{}) {
		b.Segment("PD1").Set("4.1", gp.ID).Set("4.2.1", gp.FamilyName).Set("4.3", gp.GivenName)
	}
	// MRG directly follows PID (ADT_A39: PID [PD1] MRG [PV1]); in a link
	// or unlink (ADT_A24, ADT_A37) the other patient is a second PID.
	if len(ev.Patient.PriorIdentifiers) > 0 && (ev.EventType == "link" || ev.EventType == "unlink") {
		pid := b.Segment("PID").Set("1", "2")
		for i := range ev.Patient.PriorIdentifiers {
			setCX(pid, 3, i+1, &ev.Patient.PriorIdentifiers[i])
		}
	} else if len(ev.Patient.PriorIdentifiers) > 0 {
		mrg := b.Segment("MRG")
		for i := range ev.Patient.PriorIdentifiers {
			setCX(mrg, 1, i+1, &ev.Patient.PriorIdentifiers[i])
		}
	}
	if fits.nk1 {
		for i := range ev.NextOfKin {
			k := &ev.NextOfKin[i]
			b.Segment("NK1").Set("1", strconv.Itoa(i+1)).Set("2.1.1", k.FamilyName).Set("2.2", k.GivenName).
				Set("3.1", k.Relationship).Set("3.2", k.RelationshipText).Set("5.1", k.Phone)
		}
	}
	switch {
	case ev.Encounter != nil:
		writePV1(b, ev.Encounter)
	case isADT && !pv1Optional[Structure(ev.MessageType, ev.TriggerEvent)]:
		b.Segment("PV1").Set("1", "1").Set("2", "N")
	}

	// Observations follow their order's OBR. Those with no (valid) order
	// go after PV1 in an ADT, which allows OBX there, and otherwise after
	// the last order, since order and result structures only carry OBX
	// inside an order group.
	byOrder := make([][]int, len(ev.Orders))
	var loose []int
	for i := range ev.Observations {
		oi := ev.Observations[i].OrderIndex
		if oi >= 0 && oi < len(ev.Orders) {
			byOrder[oi] = append(byOrder[oi], i)
		} else {
			loose = append(loose, i)
		}
	}
	if isADT || len(ev.Orders) == 0 {
		writeOBXs(b, d, ev.Observations, loose)
		loose = nil
	}
	// AL1 follows PV1 and its OBX (ADT_A01: PV1 [PV2] ... [OBX] [AL1]) and
	// precedes the order groups (ORM_O01, OML_O21).
	if fits.al1 {
		for i := range ev.Allergies {
			a := &ev.Allergies[i]
			s := b.Segment("AL1").Set("1", strconv.Itoa(i+1)).Set("2", a.Type).
				Set("3.1", a.Code).Set("3.2", a.Text).Set("3.3", a.CodingSystem).
				Set("3.4", a.AltCode).Set("3.5", a.AltText).Set("3.6", a.AltCodingSystem).Set("4", a.Severity)
			for r, reaction := range strings.Split(a.Reaction, "~") {
				s.Set(pathR(5, r+1), reaction)
			}
		}
	}
	defaultControl := "NW"
	if ev.MessageType == "ORU" {
		defaultControl = "RE"
	}
	for i := range ev.Orders {
		writeOrder(b, &ev.Orders[i], i+1, defaultControl)
		writeOBXs(b, d, ev.Observations, byOrder[i])
	}
	writeOBXs(b, d, ev.Observations, loose)
	return finish(b, cs, ev)
}

// finish encodes the built message in the destination's character set.
func finish(b *hl7v2.Builder, cs hl7v2.Charset, ev *avro.ClinicalEvent) ([]byte, error) {
	if err := b.Err(); err != nil {
		return nil, fmt.Errorf("render hl7 %s^%s: %w", ev.MessageType, ev.TriggerEvent, err)
	}
	out, err := cs.Encode(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("render hl7 %s^%s in %s: %w", ev.MessageType, ev.TriggerEvent, cs.Name(), err)
	}
	return out, nil
}

// noPatient reports whether p says nothing at all.
func noPatient(p *avro.Patient) bool {
	return len(p.Identifiers) == 0 && p.FamilyName == "" && len(p.GivenNames) == 0 && p.BirthDate == "" &&
		p.Sex == "" && len(p.Addresses) == 0 && len(p.PriorIdentifiers) == 0 && len(p.Telecoms) == 0 &&
		p.GP == (avro.Practitioner{})
}

func writePID(b *hl7v2.Builder, p *avro.Patient) {
	s := b.Segment("PID").Set("1", "1")
	for i := range p.Identifiers {
		setCX(s, 3, i+1, &p.Identifiers[i])
	}
	s.Set("5.1", p.FamilyName)
	if len(p.GivenNames) > 0 {
		s.Set("5.2", p.GivenNames[0])
		// XPN.3 holds second and further given names, space separated.
		s.Set("5.3", strings.Join(p.GivenNames[1:], " "))
	}
	s.Set("7", p.BirthDate)
	s.Set("8", p.Sex)
	for i := range p.Addresses {
		a := &p.Addresses[i]
		r := i + 1
		s.Set(pathRC(11, r, 1), a.Street)
		s.Set(pathRC(11, r, 2), a.Other)
		s.Set(pathRC(11, r, 3), a.City)
		s.Set(pathRC(11, r, 4), a.State)
		s.Set(pathRC(11, r, 5), a.PostalCode)
		s.Set(pathRC(11, r, 6), a.Country)
		s.Set(pathRC(11, r, 7), a.Type)
	}
	// Home numbers to PID-13, business (WPN) to PID-14, repetitions in
	// the event's order. An e-mail address goes to XTN.4 as well, where
	// 2.5 on expects it.
	home, business := 0, 0
	for i := range p.Telecoms {
		t := &p.Telecoms[i]
		f, r := 13, 0
		if t.Use == "WPN" {
			business++
			f, r = 14, business
		} else {
			home++
			r = home
		}
		s.Set(pathRC(f, r, 1), t.Value)
		s.Set(pathRC(f, r, 2), t.Use)
		s.Set(pathRC(f, r, 3), t.Equipment)
		if t.Use == "NET" || strings.EqualFold(t.Equipment, "Internet") || strings.EqualFold(t.Equipment, "X.400") {
			s.Set(pathRC(f, r, 4), t.Value)
		}
	}
}

// setCX writes id as repetition rep of field: CX.1 value, CX.4 assigning
// authority, CX.5 identifier type, CX.6 assigning facility.
func setCX(s *hl7v2.SegmentBuilder, field, rep int, id *avro.Identifier) {
	s.Set(pathRC(field, rep, 1), id.Value)
	s.Set(pathRC(field, rep, 4), id.AssigningAuthority)
	s.Set(pathRC(field, rep, 5), id.TypeCode)
	s.Set(pathRC(field, rep, 6), id.AssigningFacility)
}

func writePV1(b *hl7v2.Builder, e *avro.Encounter) {
	b.Segment("PV1").
		Set("1", "1").
		Set("2", e.PatientClass).
		Set("3.1", e.PointOfCare).
		Set("3.2", e.Room).
		Set("3.3", e.Bed).
		Set("3.4", e.Facility).
		Set("6.1", e.PriorPointOfCare).
		Set("7.1", e.AttendingDoctor).
		Set("19.1", e.VisitNumber).
		Set("44", e.AdmitTime).
		Set("45", e.DischargeTime)
}

func writeOrder(b *hl7v2.Builder, o *avro.Order, setID int, defaultControl string) {
	control := o.Control
	if control == "" {
		control = defaultControl // ORC-1 is required
	}
	b.Segment("ORC").
		Set("1", control).
		Set("2.1", o.PlacerOrderNumber).Set("2.2", o.PlacerNamespace).Set("2.3", o.PlacerUniversalID).Set("2.4", o.PlacerUniversalIDType).
		Set("3.1", o.FillerOrderNumber).Set("3.2", o.FillerNamespace).Set("3.3", o.FillerUniversalID).Set("3.4", o.FillerUniversalIDType).
		Set("5", o.Status).
		Set("9", o.OrderedAt).
		Set("12.1", o.OrderingProvider)
	b.Segment("OBR").
		Set("1", strconv.Itoa(setID)).
		Set("2.1", o.PlacerOrderNumber).Set("2.2", o.PlacerNamespace).Set("2.3", o.PlacerUniversalID).Set("2.4", o.PlacerUniversalIDType).
		Set("3.1", o.FillerOrderNumber).Set("3.2", o.FillerNamespace).Set("3.3", o.FillerUniversalID).Set("3.4", o.FillerUniversalIDType).
		Set("4.1", o.ServiceCode).
		Set("4.2", o.ServiceText).
		Set("4.3", o.ServiceSystem).
		Set("4.4", o.ServiceAltCode). // the alternate coding (CWE.4-6), docs/codes.md
		Set("4.5", o.ServiceAltText).
		Set("4.6", o.ServiceAltSystem).
		Set("7", o.ObservedAt).
		Set("16.1", o.OrderingProvider).
		Set("25", o.ResultStatus).
		Set("27.6", o.Priority)
}

func writeOBXs(b *hl7v2.Builder, d hl7v2.Delimiters, obs []avro.Observation, idx []int) {
	for _, i := range idx {
		o := &obs[i]
		s := b.Segment("OBX").
			Set("1", o.SetID).
			Set("2", o.ValueType).
			Set("3.1", o.Code).
			Set("3.2", o.Text).
			Set("3.3", o.CodingSystem).
			// The alternate coding (CWE.4-6): the local code a code map
			// replaced, or the sender's own (docs/codes.md).
			Set("3.4", o.AltCode).
			Set("3.5", o.AltText).
			Set("3.6", o.AltCodingSystem)
		setValue(s, d, o.ValueType, o.Value)
		s.Set("6.1", o.Units).
			Set("6.2", o.UnitsText).
			Set("6.3", o.UnitsSystem).
			Set("6.4", o.UnitsAltCode).
			Set("6.5", o.UnitsAltText).
			Set("6.6", o.UnitsAltSystem).
			Set("7", o.ReferenceRange)
		for r, flag := range strings.Split(o.AbnormalFlags, "~") {
			s.Set(pathR(8, r+1), flag)
		}
		s.Set("11", o.Status).
			Set("14", o.ObservedAt)
	}
}

// compositeTypes are the OBX-2 value types whose values have components.
// Normalise keeps their component separators in Observation.Value ("^" and
// "&" after unescaping), so here they split the value back into components;
// in every other type "^" and "&" are text and are escaped.
var compositeTypes = map[string]bool{
	"AD": true, "CE": true, "CF": true, "CNE": true, "CP": true, "CQ": true, "CWE": true,
	"CX": true, "DR": true, "ED": true, "EI": true, "HD": true, "MO": true, "PN": true,
	"RP": true, "SN": true, "TS": true, "XAD": true, "XCN": true, "XON": true, "XPN": true,
	"XTN": true,
}

// setValue writes OBX-5: one repetition per "~"-separated part of value,
// each split into components and subcomponents for composite types.
func setValue(s *hl7v2.SegmentBuilder, d hl7v2.Delimiters, valueType, value string) {
	if value == "" {
		return
	}
	composite := compositeTypes[valueType]
	for r, rep := range strings.Split(value, "~") {
		if !composite {
			s.Set(pathR(5, r+1), rep)
			continue
		}
		var raw []byte
		for c, comp := range strings.Split(rep, "^") {
			if c > 0 {
				raw = append(raw, d.Component)
			}
			for sc, sub := range strings.Split(comp, "&") {
				if sc > 0 {
					raw = append(raw, d.Subcomponent)
				}
				raw = hl7v2.Escape(raw, sub, d)
			}
		}
		s.SetRaw(pathR(5, r+1), string(raw))
	}
}

// pathR is the path of repetition rep of field: "5[2]".
func pathR(field, rep int) string {
	var buf [16]byte
	p := strconv.AppendInt(buf[:0], int64(field), 10)
	p = append(p, '[')
	p = strconv.AppendInt(p, int64(rep), 10)
	p = append(p, ']')
	return string(p)
}

// pathRC is the path of component comp of repetition rep of field:
// "3[2].4".
func pathRC(field, rep, comp int) string {
	var buf [24]byte
	p := strconv.AppendInt(buf[:0], int64(field), 10)
	p = append(p, '[')
	p = strconv.AppendInt(p, int64(rep), 10)
	p = append(p, ']', '.')
	p = strconv.AppendInt(p, int64(comp), 10)
	return string(p)
}
