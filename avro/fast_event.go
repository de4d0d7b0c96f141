// This file is a direct Avro binary codec for ClinicalEvent in careflow's
// own schema version. Normalise encodes every event once and route and
// deliver decode it once per stage and destination; through goavro's
// generic maps that cost about 250 and 560 allocations a time and was the
// largest single cost of the pipeline. The Serde uses this codec when the
// record was written with (or is being written in) the embedded schema,
// and goavro's resolution for every other writer version, so evolution
// keeps working as before. fast_event_test.go checks that both paths give
// identical bytes and identical records.

package avro

import (
	"encoding/binary"
	"errors"
	"time"
)

// appendEvent appends e's Avro body in the embedded ClinicalEvent schema.
func appendEvent(b []byte, e *ClinicalEvent) []byte {
	b = appendStrings(b, e.EventID, e.CorrelationID, e.IdempotencyKey, e.EventType, e.MessageType, e.TriggerEvent)
	p := &e.Patient
	b = appendIdentifiers(b, p.Identifiers)
	b = appendStrings(b, p.FamilyName)
	b = appendLong(b, int64(len(p.GivenNames)))
	if len(p.GivenNames) > 0 {
		b = appendStrings(b, p.GivenNames...)
		b = append(b, 0)
	}
	b = appendStrings(b, p.BirthDate, p.Sex)
	b = appendLong(b, int64(len(p.Addresses)))
	if len(p.Addresses) > 0 {
		for i := range p.Addresses {
			a := &p.Addresses[i]
			b = appendStrings(b, a.Street, a.Other, a.City, a.State, a.PostalCode, a.Country, a.Type)
		}
		b = append(b, 0)
	}
	b = appendIdentifiers(b, p.PriorIdentifiers)
	if c := e.Encounter; c == nil {
		b = appendLong(b, 0) // the "null" branch
	} else {
		b = appendLong(b, 1)
		b = appendStrings(b, c.VisitNumber, c.PatientClass, c.PointOfCare, c.Room, c.Bed, c.Facility,
			c.AttendingDoctor, c.AdmitTime, c.DischargeTime, c.PriorPointOfCare)
	}
	b = appendLong(b, int64(len(e.Orders)))
	if len(e.Orders) > 0 {
		for i := range e.Orders {
			o := &e.Orders[i]
			b = appendStrings(b, o.Control, o.PlacerOrderNumber, o.FillerOrderNumber, o.Status, o.ServiceCode,
				o.ServiceText, o.ServiceSystem, o.Priority, o.OrderedAt, o.OrderingProvider, o.ResultStatus, o.ObservedAt)
		}
		b = append(b, 0)
	}
	b = appendLong(b, int64(len(e.Observations)))
	if len(e.Observations) > 0 {
		for i := range e.Observations {
			o := &e.Observations[i]
			b = appendStrings(b, o.SetID)
			b = appendLong(b, int64(int32(o.OrderIndex)))
			b = appendStrings(b, o.ValueType, o.Code, o.Text, o.CodingSystem, o.Value, o.Units,
				o.ReferenceRange, o.AbnormalFlags, o.Status, o.ObservedAt)
		}
		b = append(b, 0)
	}
	v := &e.Provenance
	b = appendStrings(b, v.Interface, v.MessageID, v.ControlID, v.SendingApplication, v.SendingFacility,
		v.ReceivingApplication, v.ReceivingFacility, v.Version, v.EventTime, v.MessageTime)
	return appendLong(b, millis(v.IngestTime))
}

func appendIdentifiers(b []byte, ids []Identifier) []byte {
	b = appendLong(b, int64(len(ids)))
	if len(ids) == 0 {
		return b
	}
	for i := range ids {
		b = appendStrings(b, ids[i].Value, ids[i].AssigningAuthority, ids[i].TypeCode, ids[i].AssigningFacility)
	}
	return append(b, 0)
}

// appendLong writes an Avro int or long: zigzag, then a varint.
func appendLong(b []byte, v int64) []byte {
	return binary.AppendUvarint(b, uint64(v<<1)^uint64(v>>63))
}

func appendStrings(b []byte, ss ...string) []byte {
	for _, s := range ss {
		b = appendLong(b, int64(len(s)))
		b = append(b, s...)
	}
	return b
}

// errShort and errBad say why a body is malformed; the Serde wraps them.
var (
	errShort = errors.New("body ends early")
	errBad   = errors.New("invalid length or union index")
)

// eventReader decodes the embedded ClinicalEvent schema. The first error
// sticks; later reads return zero values. Strings are slices of one copy
// of the body (src), so a record costs one string allocation, not one per
// field; the copy lives as long as any of its fields.
type eventReader struct {
	b   []byte // the unread rest of the body
	src string // the whole body, copied once
	off int    // len(src) - len(b)
	err error
}

func (r *eventReader) long() int64 {
	if r.err != nil {
		return 0
	}
	u, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b, r.off = r.b[n:], r.off+n
	return int64(u>>1) ^ -int64(u&1)
}

func (r *eventReader) str() string {
	n := r.long()
	if r.err != nil || n == 0 {
		return ""
	}
	if n < 0 || n > int64(len(r.b)) {
		r.err = errShort
		return ""
	}
	s := r.src[r.off : r.off+int(n)]
	r.b, r.off = r.b[n:], r.off+int(n)
	return s
}

// count reads an array block's item count (0 ends the array). A negative
// count is followed by the block's size in bytes, which is skipped.
func (r *eventReader) count() int {
	n := r.long()
	if n < 0 {
		n = -n
		r.long()
	}
	// Every item takes at least one byte: a larger count is corrupt, and
	// must not size an allocation.
	if r.err == nil && (n > int64(len(r.b)) || n < 0) {
		r.err = errBad
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

// array calls item for every element of an array and returns how many.
func (r *eventReader) array(item func()) int {
	total := 0
	for n := r.count(); n > 0 && r.err == nil; n = r.count() {
		for range n {
			item()
		}
		total += n
	}
	return total
}

func (r *eventReader) identifiers() []Identifier {
	var ids []Identifier
	r.array(func() {
		ids = append(ids, Identifier{Value: r.str(), AssigningAuthority: r.str(), TypeCode: r.str(), AssigningFacility: r.str()})
	})
	return ids
}

// decodeEvent reads a body written with the embedded schema.
func decodeEvent(body []byte, e *ClinicalEvent) error {
	r := &eventReader{b: body, src: string(body)}
	*e = ClinicalEvent{
		EventID: r.str(), CorrelationID: r.str(), IdempotencyKey: r.str(),
		EventType: r.str(), MessageType: r.str(), TriggerEvent: r.str(),
	}
	p := &e.Patient
	p.Identifiers = r.identifiers()
	p.FamilyName = r.str()
	r.array(func() { p.GivenNames = append(p.GivenNames, r.str()) })
	p.BirthDate, p.Sex = r.str(), r.str()
	r.array(func() {
		p.Addresses = append(p.Addresses, Address{Street: r.str(), Other: r.str(), City: r.str(), State: r.str(),
			PostalCode: r.str(), Country: r.str(), Type: r.str()})
	})
	p.PriorIdentifiers = r.identifiers()
	switch r.long() {
	case 0:
	case 1:
		e.Encounter = &Encounter{VisitNumber: r.str(), PatientClass: r.str(), PointOfCare: r.str(), Room: r.str(),
			Bed: r.str(), Facility: r.str(), AttendingDoctor: r.str(), AdmitTime: r.str(), DischargeTime: r.str(),
			PriorPointOfCare: r.str()}
	default:
		if r.err == nil {
			r.err = errBad
		}
	}
	r.array(func() {
		e.Orders = append(e.Orders, Order{Control: r.str(), PlacerOrderNumber: r.str(), FillerOrderNumber: r.str(),
			Status: r.str(), ServiceCode: r.str(), ServiceText: r.str(), ServiceSystem: r.str(), Priority: r.str(),
			OrderedAt: r.str(), OrderingProvider: r.str(), ResultStatus: r.str(), ObservedAt: r.str()})
	})
	r.array(func() {
		o := Observation{SetID: r.str()}
		o.OrderIndex = int(int32(r.long()))
		o.ValueType, o.Code, o.Text, o.CodingSystem = r.str(), r.str(), r.str(), r.str()
		o.Value, o.Units, o.ReferenceRange, o.AbnormalFlags = r.str(), r.str(), r.str(), r.str()
		o.Status, o.ObservedAt = r.str(), r.str()
		e.Observations = append(e.Observations, o)
	})
	v := &e.Provenance
	v.Interface, v.MessageID, v.ControlID = r.str(), r.str(), r.str()
	v.SendingApplication, v.SendingFacility = r.str(), r.str()
	v.ReceivingApplication, v.ReceivingFacility = r.str(), r.str()
	v.Version, v.EventTime, v.MessageTime = r.str(), r.str(), r.str()
	if ms := r.long(); ms != 0 {
		v.IngestTime = time.UnixMilli(ms).UTC()
	}
	if r.err == nil && len(r.b) != 0 {
		return errTrailing(len(r.b))
	}
	return r.err
}

type errTrailing int

func (n errTrailing) Error() string { return "bytes left after the record" }
