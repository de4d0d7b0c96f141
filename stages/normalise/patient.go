package normalise

import (
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
