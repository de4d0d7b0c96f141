package normalise

import (
	"strings"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// mapPatient reads the first PID (and, for a merge, the first MRG; for a
// link or unlink, the second PID's identifiers as PriorIdentifiers). It
// returns the location of what is missing ("PID", "PID-3") when the
// message names no patient a receiver could file the event under.
//
// An A40 may carry several PID/MRG groups, one per merge; only the first is
// mapped (see docs/canonical-model.md), because one event has one patient.
func mapPatient(m *hl7v2.Message, eventType string) (avro.Patient, string) {
	pid, ok := m.Segment("PID")
	if !ok {
		return avro.Patient{}, "PID"
	}
	p := avro.Patient{
		Identifiers: identifiers(pid.Field(3)),
		BirthDate:   str(pid.Field(7).Component(1)),
		Sex:         str(pid.Field(8).Component(1)),
		Addresses:   addresses(pid.Field(11)),
		Telecoms:    append(telecoms(pid.Field(13), ""), telecoms(pid.Field(14), "WPN")...),
	}
	if pd1, ok := m.Segment("PD1"); ok {
		gp := pd1.Field(4).Rep(1)
		p.GP = avro.Practitioner{ID: str(gp.Component(1)), FamilyName: str(gp.Component(2).Sub(1)), GivenName: str(gp.Component(3))}
	}
	if len(p.Identifiers) == 0 {
		return avro.Patient{}, "PID-3"
	}
	// XPN.1 is a plain string up to 2.2 and the FN type (surname&own
	// surname prefix&own surname&...) from 2.3; FN.1 is the whole surname
	// in both, since a value without subcomponents is its own first one.
	name := pid.Field(5).Rep(1)
	p.FamilyName = str(name.Component(1).Sub(1))
	for _, c := range []int{2, 3} { // given name, then middle names
		if g := str(name.Component(c)); g != "" {
			p.GivenNames = append(p.GivenNames, g)
		}
	}
	switch eventType {
	case EventMerge:
		if mrg, ok := m.Segment("MRG"); ok {
			p.PriorIdentifiers = identifiers(mrg.Field(1))
		}
	case EventLink, EventUnlink: // the other patient is the second PID
		if pids := m.SegmentsNamed("PID"); len(pids) > 1 {
			p.PriorIdentifiers = identifiers(pids[1].Field(3))
		}
	}
	return p, ""
}

// identifiers reads every repetition of a CX field. A repetition without an
// ID (CX.1) identifies nothing and is skipped. In 2.2 the field is CK
// (id^check digit^scheme^facility): CX.4 then holds the facility and CX.5
// is absent, which maps to "".
func identifiers(f hl7v2.Field) []avro.Identifier {
	var out []avro.Identifier
	for i := 1; i <= f.Reps(); i++ {
		r := f.Rep(i)
		v := str(r.Component(1))
		if v == "" {
			continue
		}
		out = append(out, avro.Identifier{
			Value:              v,
			AssigningAuthority: str(r.Component(4).Sub(1)),
			TypeCode:           str(r.Component(5)),
			AssigningFacility:  str(r.Component(6).Sub(1)),
		})
	}
	return out
}

// addresses reads every repetition of an XAD field, skipping empty ones.
// XAD.1 is SAD from 2.5 (street&street name&house number); SAD.1 is the
// full street line, and older versions' plain string is its own SAD.1.
func addresses(f hl7v2.Field) []avro.Address {
	var out []avro.Address
	for i := 1; i <= f.Reps(); i++ {
		r := f.Rep(i)
		a := avro.Address{
			Street:     str(r.Component(1).Sub(1)),
			Other:      str(r.Component(2)),
			City:       str(r.Component(3)),
			State:      str(r.Component(4)),
			PostalCode: str(r.Component(5)),
			Country:    str(r.Component(6)),
			Type:       str(r.Component(7)),
		}
		if a != (avro.Address{}) {
			out = append(out, a)
		}
	}
	return out
}

// telecoms reads every repetition of an XTN field (PID-13, PID-14),
// skipping those without a number. The number is XTN.1; from 2.5, which
// deprecates XTN.1, a sender may leave it empty and give the e-mail
// address (XTN.4) or the country, area and local number (XTN.5 to XTN.7,
// joined here by spaces) instead. use is the use code (XTN.2) of a
// repetition without one: PID-14 is the business number, WPN.
func telecoms(f hl7v2.Field, use string) []avro.Telecom {
	var out []avro.Telecom
	for i := 1; i <= f.Reps(); i++ {
		r := f.Rep(i)
		t := avro.Telecom{Value: str(r.Component(1)), Use: str(r.Component(2)), Equipment: str(r.Component(3))}
		if t.Value == "" {
			t.Value = str(r.Component(4))
		}
		if t.Value == "" {
			var parts []string
			for c := 5; c <= 7; c++ {
				if v := str(r.Component(c)); v != "" {
					parts = append(parts, v)
				}
			}
			t.Value = strings.Join(parts, " ")
		}
		if t.Value == "" {
			continue
		}
		if t.Use == "" {
			t.Use = use
		}
		out = append(out, t)
	}
	return out
}

// mapNextOfKin reads every NK1. One that names nobody (no NK1-2, no
// NK1-5) is skipped: a sender's placeholder NK1|1 says nothing.
func mapNextOfKin(m *hl7v2.Message) []avro.NextOfKin {
	var out []avro.NextOfKin
	for _, nk1 := range m.SegmentsNamed("NK1") {
		name, rel := nk1.Field(2).Rep(1), nk1.Field(3)
		k := avro.NextOfKin{
			FamilyName:       str(name.Component(1).Sub(1)),
			GivenName:        str(name.Component(2)),
			Relationship:     str(rel.Component(1)),
			RelationshipText: str(rel.Component(2)),
		}
		if ph := telecoms(nk1.Field(5), ""); len(ph) > 0 {
			k.Phone = ph[0].Value
		}
		if k.FamilyName != "" || k.GivenName != "" || k.Phone != "" {
			out = append(out, k)
		}
	}
	return out
}

// mapAllergies reads every AL1 that names an allergen (AL1-3).
func mapAllergies(m *hl7v2.Message) []avro.Allergy {
	var out []avro.Allergy
	for _, al1 := range m.SegmentsNamed("AL1") {
		code := al1.Field(3)
		a := avro.Allergy{
			Type:         str(al1.Field(2).Component(1)),
			Code:         str(code.Component(1)),
			Text:         str(code.Component(2)),
			CodingSystem: str(code.Component(3)),
			Severity:     str(al1.Field(4).Component(1)),
			// The sender's own alternate coding, kept as sent.
			AltCode: str(code.Component(4)), AltText: str(code.Component(5)), AltCodingSystem: str(code.Component(6)),
		}
		var reactions []string
		for i := 1; i <= al1.Field(5).Reps(); i++ {
			if v := str(al1.Field(5).Rep(i)); v != "" {
				reactions = append(reactions, v)
			}
		}
		a.Reaction = strings.Join(reactions, "~")
		if a.Code != "" || a.Text != "" {
			out = append(out, a)
		}
	}
	return out
}
