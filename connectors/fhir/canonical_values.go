// This file holds the FHIR data types read back into the canonical
// model's HL7-shaped strings: dates and times as DTM at the precision
// sent, CodeableConcepts as CWE codings, Identifiers as EI.

package fhir

import (
	"strconv"
	"strings"
	"time"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// inZone is a google/fhir timezone ("UTC", "Z", "+01:00", an IANA name)
// as a location, and whether it is UTC.
func inZone(tz string) (*time.Location, bool) {
	switch tz {
	case "", "UTC", "Z", "+00:00":
		return time.UTC, true
	}
	if len(tz) == 6 && (tz[0] == '+' || tz[0] == '-') && tz[3] == ':' {
		h, err1 := strconv.Atoi(tz[1:3])
		m, err2 := strconv.Atoi(tz[4:6])
		if err1 == nil && err2 == nil {
			off := h*3600 + m*60
			if tz[0] == '-' {
				off = -off
			}
			return time.FixedZone(tz, off), false
		}
	}
	if loc, err := time.LoadLocation(tz); err == nil {
		return loc, false
	}
	return time.UTC, true
}

// inDate is a FHIR date as an HL7 DTM at its precision (YYYY, YYYYMM,
// YYYYMMDD): the reverse of date().
func inDate(d *dpb.Date) string {
	loc, _ := inZone(d.GetTimezone())
	t := time.UnixMicro(d.GetValueUs()).In(loc)
	switch d.GetPrecision() {
	case dpb.Date_YEAR:
		return t.Format("2006")
	case dpb.Date_MONTH:
		return t.Format("200601")
	}
	return t.Format("20060102")
}

// inDateTime is a FHIR dateTime as an HL7 DTM at its precision: the
// reverse of dateTime(), which reads a DTM without a zone as UTC, so a
// UTC time is written without one and any other with its offset.
func inDateTime(d *dpb.DateTime) string {
	if d == nil {
		return ""
	}
	return inTime(d.GetValueUs(), d.GetTimezone(), d.GetPrecision().String())
}

func inInstantValue(i *dpb.Instant) string {
	if i == nil {
		return ""
	}
	return inTime(i.GetValueUs(), i.GetTimezone(), i.GetPrecision().String())
}

func inTime(us int64, tz, precision string) string {
	loc, utc := inZone(tz)
	t := time.UnixMicro(us).In(loc)
	var s string
	switch precision {
	case "YEAR":
		return t.Format("2006")
	case "MONTH":
		return t.Format("200601")
	case "DAY":
		return t.Format("20060102")
	case "MILLISECOND":
		s = t.Format("20060102150405.000")
	case "MICROSECOND":
		s = t.Format("20060102150405.000000")
	default:
		s = t.Format("20060102150405")
	}
	if !utc {
		s += t.Format("-0700")
	}
	return s
}

// inPeriodStart is a Period's start as a DTM.
func inPeriodStart(p *dpb.Period) string { return inDateTime(p.GetStart()) }

// inInstant is the first of ms with meta.lastUpdated, as a DTM: when the
// resource was written, EVN-2's place; "" when none says.
func inInstant(ms ...proto.Message) string {
	for _, m := range ms {
		if m == nil {
			continue
		}
		pr := m.ProtoReflect()
		f := pr.Descriptor().Fields().ByName("meta")
		if f == nil || !pr.Has(f) {
			continue
		}
		if meta, ok := pr.Get(f).Message().Interface().(*dpb.Meta); ok && meta.GetLastUpdated() != nil {
			return inInstantValue(meta.GetLastUpdated())
		}
	}
	return ""
}

// inCode is a google/fhir code enum as FHIR writes it (IN_PROGRESS is
// in-progress).
func inCode(v protoreflect.Enum) string {
	return strings.ToLower(strings.ReplaceAll(string(v.Descriptor().Values().ByNumber(v.Number()).Name()), "_", "-"))
}

// fromCodeSystems are codeSystems the other way: a FHIR code system URI
// to its HL7 table 0396 code.
var fromCodeSystems = func() map[string]string {
	out := map[string]string{}
	for code, uri := range codeSystems {
		if _, dup := out[uri]; !dup || code == "SCT" {
			out[uri] = code // SNOMED CT is SCT, not the older SNM
		}
	}
	return out
}()

// inCWE is one CWE triplet.
type inCWE struct{ code, text, system string }

// inConcept is a CodeableConcept as CWE's primary and alternate codings:
// the first coding in a standard system careflow knows (LOINC, SNOMED
// CT, UCUM, ICD-10) is primary, the first other coding the alternate;
// with no standard coding, the first and second. A system careflow has
// no table 0396 code for is kept as its URI; a coding without one has
// no system. The primary's text is code.text, else its display.
func inConcept(cc *dpb.CodeableConcept) (primary, alt inCWE) {
	codings := cc.GetCoding()
	first := -1
	for i, c := range codings {
		if _, ok := fromCodeSystems[c.GetSystem().GetValue()]; ok {
			first = i
			break
		}
	}
	second := -1
	if first < 0 {
		first, second = 0, 1
	} else {
		for i := range codings {
			if i != first {
				second = i
				break
			}
		}
	}
	if first < len(codings) {
		primary = inCoding(codings[first])
	}
	if second >= 0 && second < len(codings) {
		alt = inCoding(codings[second])
	}
	if t := cc.GetText().GetValue(); t != "" {
		primary.text = t
	}
	return primary, alt
}

func inCoding(c *dpb.Coding) inCWE {
	out := inCWE{code: c.GetCode().GetValue(), text: c.GetDisplay().GetValue(), system: c.GetSystem().GetValue()}
	if code, ok := fromCodeSystems[out.system]; ok {
		out.system = code
	}
	return out
}

// cwe is a coding as a CWE value (code^text^system), trailing empties
// dropped, for an OBX-5 of type CWE.
func (c inCWE) cwe() string {
	return strings.TrimRight(c.code+"^"+c.text+"^"+c.system, "^")
}

// inEI is an order number (HL7 EI) read from an Identifier: EI.1 the value,
// EI.2 the namespace (the system's authority, else the assigner's
// display), and for a urn:oid: system EI.3 and EI.4 the OID and ISO.
type inEI struct{ number, namespace, universalID, universalIDType string }

func (s *inScope) fromOrderIdentifier(id *dpb.Identifier) inEI {
	out := inEI{number: id.GetValue().GetValue()}
	sys := id.GetSystem().GetValue()
	switch {
	case strings.HasPrefix(sys, "urn:oid:"):
		out.universalID, out.universalIDType = strings.TrimPrefix(sys, "urn:oid:"), "ISO"
	case sys != "":
		out.namespace = s.sys.Authority(sys)
	default:
		out.namespace = id.GetAssigner().GetDisplay().GetValue()
	}
	return out
}

// inOrderRole is where an identifier says it is a placer (PLAC) or
// filler (FILL) order number: HL7 table 0203, in v2-0203.
func inOrderRole(id *dpb.Identifier) string {
	switch inTypeCode(id.GetType()) {
	case "PLAC":
		return "PLAC"
	case "FILL":
		return "FILL"
	}
	return ""
}

// inReferenceID is what a reference says of who it names, as an XCN.1
// would: its identifier's value, else the id of a relative reference
// (Practitioner/123 is 123), else its display.
func inReferenceID(ref *dpb.Reference) string {
	if ref == nil {
		return ""
	}
	if v := ref.GetIdentifier().GetValue().GetValue(); v != "" {
		return v
	}
	if r := inReferenceString(ref); r != "" && !strings.HasPrefix(r, "#") && !strings.HasPrefix(r, "urn:") {
		r = strings.Split(r, "/_history/")[0]
		return r[strings.LastIndex(r, "/")+1:]
	}
	return ref.GetDisplay().GetValue()
}
