// This file is v2-to-FHIR's PID[Patient]: the canonical patient as a
// FHIR R4 Patient.

package fhir

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// v2IdentifierTypes is HL7 table 0203's code system, for Identifier.type.
const v2IdentifierTypes = "http://terminology.hl7.org/CodeSystem/v2-0203"

// Patient is p as a FHIR R4 Patient (v2-to-FHIR PID[Patient]): PID-3
// identifiers in sys's systems (nil: the defaults), PID-5 name, PID-7
// birthDate, PID-8 gender, PID-11 address, PID-13/14 telecom. It is
// validated; an invalid one (a birth date no FHIR date can hold) is an
// error naming the element.
func Patient(p *avro.Patient, sys *Systems) (*ppb.Patient, error) {
	out := &ppb.Patient{}
	for _, id := range p.Identifiers {
		out.Identifier = append(out.Identifier, identifier(id, sys))
	}
	if p.FamilyName != "" || len(p.GivenNames) > 0 {
		n := &dpb.HumanName{}
		if p.FamilyName != "" {
			n.Family = str(p.FamilyName)
		}
		for _, g := range p.GivenNames {
			n.Given = append(n.Given, str(g))
		}
		out.Name = []*dpb.HumanName{n}
	}
	if p.BirthDate != "" {
		d, err := date(p.BirthDate)
		if err != nil {
			return nil, &Error{Path: "Patient.birthDate", Source: "PID-7", Err: err}
		}
		out.BirthDate = d
	}
	if g, ok := genders[strings.ToUpper(p.Sex)]; ok {
		out.Gender = &ppb.Patient_GenderCode{Value: g}
	}
	for _, a := range p.Addresses {
		out.Address = append(out.Address, address(a))
	}
	for _, t := range p.Telecoms {
		if cp := contactPoint(t); cp != nil {
			out.Telecom = append(out.Telecom, cp)
		}
	}
	if err := fhirvalidate.Validate(out); err != nil {
		return nil, &Error{Path: "Patient", Source: "PID", Err: err}
	}
	return out, nil
}

// Error is a resource careflow could not write, at its FHIR element path
// and the v2 field it came from.
type Error struct {
	Path   string // Patient.birthDate
	Source string // PID-7
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("fhir: %s (from %s): %v", e.Path, e.Source, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// genders is v2-to-FHIR's ConceptMap for HL7 table 0001 to FHIR's
// AdministrativeGender: A (ambiguous) is other, N (not applicable) is
// unknown; a value outside the table is left out.
var genders = map[string]cpb.AdministrativeGenderCode_Value{
	"M": cpb.AdministrativeGenderCode_MALE, "F": cpb.AdministrativeGenderCode_FEMALE,
	"O": cpb.AdministrativeGenderCode_OTHER, "A": cpb.AdministrativeGenderCode_OTHER,
	"U": cpb.AdministrativeGenderCode_UNKNOWN, "N": cpb.AdministrativeGenderCode_UNKNOWN,
}

// identifier is a CX as an Identifier, in the system sys writes and
// searches its authority (CX.4) under, so that the identifier a Patient
// carries is the one a conditional update on it finds (Systems.SearchURI).
func identifier(id avro.Identifier, sys *Systems) *dpb.Identifier {
	out := &dpb.Identifier{Value: str(id.Value)}
	if u := sys.SearchURI(id.AssigningAuthority); u != "" {
		out.System = &dpb.Uri{Value: u}
	}
	if id.TypeCode != "" {
		out.Type = &dpb.CodeableConcept{Coding: []*dpb.Coding{{
			System: &dpb.Uri{Value: v2IdentifierTypes}, Code: &dpb.Code{Value: id.TypeCode},
		}}}
	}
	return out
}

// addressUses is XAD.7 (HL7 table 0190) to Address.use where FHIR has one.
var addressUses = map[string]cpb.AddressUseCode_Value{
	"H": cpb.AddressUseCode_HOME, "B": cpb.AddressUseCode_WORK, "O": cpb.AddressUseCode_WORK,
	"C": cpb.AddressUseCode_TEMP, "BA": cpb.AddressUseCode_OLD,
}

func address(a avro.Address) *dpb.Address {
	out := &dpb.Address{}
	for _, l := range []string{a.Street, a.Other} {
		if l != "" {
			out.Line = append(out.Line, str(l))
		}
	}
	for _, f := range []struct {
		v   string
		dst **dpb.String
	}{{a.City, &out.City}, {a.State, &out.State}, {a.PostalCode, &out.PostalCode}, {a.Country, &out.Country}} {
		if f.v != "" {
			*f.dst = str(f.v)
		}
	}
	if u, ok := addressUses[strings.ToUpper(a.Type)]; ok {
		out.Use = &dpb.Address_UseCode{Value: u}
	}
	return out
}

// contactPoint is XTN (PID-13/14) as a ContactPoint: XTN.2 use (table
// 0201) and XTN.3 equipment (table 0202) to use and system.
func contactPoint(t avro.Telecom) *dpb.ContactPoint {
	if t.Value == "" {
		return nil
	}
	out := &dpb.ContactPoint{Value: str(t.Value)}
	switch strings.ToUpper(t.Equipment) {
	case "FX":
		out.System = &dpb.ContactPoint_SystemCode{Value: cpb.ContactPointSystemCode_FAX}
	case "INTERNET", "X.400":
		out.System = &dpb.ContactPoint_SystemCode{Value: cpb.ContactPointSystemCode_EMAIL}
	case "BP":
		out.System = &dpb.ContactPoint_SystemCode{Value: cpb.ContactPointSystemCode_PAGER}
	default:
		out.System = &dpb.ContactPoint_SystemCode{Value: cpb.ContactPointSystemCode_PHONE}
	}
	switch strings.ToUpper(t.Use) {
	case "PRN", "VHN":
		out.Use = &dpb.ContactPoint_UseCode{Value: cpb.ContactPointUseCode_HOME}
	case "WPN":
		out.Use = &dpb.ContactPoint_UseCode{Value: cpb.ContactPointUseCode_WORK}
	}
	if strings.EqualFold(t.Equipment, "CP") {
		out.Use = &dpb.ContactPoint_UseCode{Value: cpb.ContactPointUseCode_MOBILE}
	}
	return out
}

// date is an HL7 DTM's date part as a FHIR date, at the precision sent
// (YYYY, YYYYMM or YYYYMMDD).
func date(dtm string) (*dpb.Date, error) {
	t, err := hl7v2.ParseTime(dtm)
	if err != nil {
		return nil, err
	}
	digits := len(dtm)
	if i := strings.IndexAny(dtm, ".+-"); i >= 0 {
		digits = i
	}
	prec := dpb.Date_DAY
	switch {
	case digits < 4:
		return nil, errors.New("a date needs at least a year")
	case digits < 6:
		prec = dpb.Date_YEAR
	case digits < 8:
		prec = dpb.Date_MONTH
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return &dpb.Date{ValueUs: day.UnixMicro(), Timezone: "UTC", Precision: prec}, nil
}

func str(s string) *dpb.String { return &dpb.String{Value: s} }

// JSON is r as FHIR JSON, with resourceType.
func JSON(r proto.Message) ([]byte, error) {
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		return nil, err
	}
	return m.MarshalResource(r)
}
