// This file is v2-to-FHIR's OBX[Observation]: one canonical observation
// as a FHIR R4 Observation.

package fhir

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	opb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// codeSystems are the HL7 table 0396 coding systems careflow knows a FHIR
// URI for; a local system ("L", "99LAB") has none, and its codings carry
// the code and display only.
var codeSystems = map[string]string{
	"LN": "http://loinc.org", "SCT": "http://snomed.info/sct", "SNM": "http://snomed.info/sct",
	"UCUM": "http://unitsofmeasure.org", "I10": "http://hl7.org/fhir/sid/icd-10",
}

// interpretations is the code system of OBX-8's abnormal flags in FHIR.
const interpretations = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

// statuses is OBX-11 (HL7 table 0085) to Observation.status, as the IG's
// ConceptMap; anything else is unknown, since status is required.
var statuses = map[string]cpb.ObservationStatusCode_Value{
	"F": cpb.ObservationStatusCode_FINAL, "P": cpb.ObservationStatusCode_PRELIMINARY,
	"C": cpb.ObservationStatusCode_CORRECTED, "X": cpb.ObservationStatusCode_CANCELLED,
	"W": cpb.ObservationStatusCode_ENTERED_IN_ERROR, "R": cpb.ObservationStatusCode_REGISTERED,
	"I": cpb.ObservationStatusCode_REGISTERED, "S": cpb.ObservationStatusCode_REGISTERED,
}

// Observation is o as a FHIR R4 Observation: OBX-3 code (a code map's
// standard coding first, the local one after it), OBX-11 status, OBX-5
// value by OBX-2 (NM a Quantity in OBX-6's units, anything else a
// string), OBX-7 reference range, OBX-8 interpretation, OBX-14
// effective time; subject refs.Patient, encounter refs.Encounter, basedOn
// refs.BasedOn (the order's ServiceRequest). It is validated.
func Observation(o *avro.Observation, refs Refs) (*opb.Observation, error) {
	out := &opb.Observation{
		Status:    &opb.Observation_StatusCode{Value: cpb.ObservationStatusCode_UNKNOWN},
		Code:      concept(o.Code, o.Text, o.CodingSystem, o.AltCode, o.AltText, o.AltCodingSystem),
		Subject:   reference(refs.Patient),
		Encounter: reference(refs.Encounter),
		BasedOn:   references(refs.BasedOn),
	}
	if s, ok := statuses[strings.ToUpper(o.Status)]; ok {
		out.Status.Value = s
	}
	if o.Value != "" {
		out.Value = value(o)
	}
	if o.ReferenceRange != "" {
		out.ReferenceRange = []*opb.Observation_ReferenceRange{{Text: str(o.ReferenceRange)}}
	}
	for _, f := range strings.Split(o.AbnormalFlags, "~") {
		if f = strings.TrimSpace(f); f != "" {
			out.Interpretation = append(out.Interpretation, &dpb.CodeableConcept{Coding: []*dpb.Coding{{
				System: &dpb.Uri{Value: interpretations}, Code: &dpb.Code{Value: f},
			}}})
		}
	}
	if o.ObservedAt != "" {
		dt, err := dateTime(o.ObservedAt)
		if err != nil {
			return nil, &Error{Path: "Observation.effectiveDateTime", Source: "OBX-14", Err: err}
		}
		out.Effective = &opb.Observation_EffectiveX{Choice: &opb.Observation_EffectiveX_DateTime{DateTime: dt}}
	}
	if err := fhirvalidate.Validate(out); err != nil {
		return nil, &Error{Path: "Observation", Source: "OBX", Err: err}
	}
	return out, nil
}

// concept is a CWE as a CodeableConcept: the primary coding, then the
// alternate (CWE.4–6), the text the primary's.
func concept(code, text, system, altCode, altText, altSystem string) *dpb.CodeableConcept {
	cc := &dpb.CodeableConcept{}
	for _, c := range [][3]string{{code, text, system}, {altCode, altText, altSystem}} {
		if c[0] == "" {
			continue
		}
		coding := &dpb.Coding{Code: &dpb.Code{Value: c[0]}}
		if c[1] != "" {
			coding.Display = str(c[1])
		}
		if uri, ok := codeSystems[strings.ToUpper(c[2])]; ok {
			coding.System = &dpb.Uri{Value: uri}
		}
		cc.Coding = append(cc.Coding, coding)
	}
	if text != "" {
		cc.Text = str(text)
	}
	return cc
}

// value is OBX-5: a Quantity for a number (NM, SN without a comparator),
// else the value as sent, as a string.
func value(o *avro.Observation) *opb.Observation_ValueX {
	if strings.EqualFold(o.ValueType, "NM") {
		if _, err := strconv.ParseFloat(strings.TrimSpace(o.Value), 64); err == nil {
			q := &dpb.Quantity{Value: &dpb.Decimal{Value: strings.TrimSpace(o.Value)}}
			unit := o.Units
			if o.UnitsText != "" {
				unit = o.UnitsText
			}
			if unit != "" {
				q.Unit = str(unit)
			}
			if strings.EqualFold(o.UnitsSystem, "UCUM") && o.Units != "" {
				q.System, q.Code = &dpb.Uri{Value: codeSystems["UCUM"]}, &dpb.Code{Value: o.Units}
			}
			return &opb.Observation_ValueX{Choice: &opb.Observation_ValueX_Quantity{Quantity: q}}
		}
	}
	return &opb.Observation_ValueX{Choice: &opb.Observation_ValueX_StringValue{StringValue: str(o.Value)}}
}

// dateTime is an HL7 DTM as a FHIR dateTime, at the precision sent; a
// time without a zone is read as UTC.
func dateTime(dtm string) (*dpb.DateTime, error) {
	t, err := hl7v2.ParseTime(dtm)
	if err != nil {
		return nil, err
	}
	digits := len(dtm)
	if i := strings.IndexAny(dtm, "+-"); i >= 0 {
		digits = i
	}
	prec := dpb.DateTime_SECOND
	switch {
	case digits <= 4:
		prec = dpb.DateTime_YEAR
	case digits <= 6:
		prec = dpb.DateTime_MONTH
	case digits <= 8:
		prec = dpb.DateTime_DAY
	case strings.Contains(dtm, "."):
		prec = dpb.DateTime_MILLISECOND
	}
	if prec <= dpb.DateTime_DAY {
		t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	return &dpb.DateTime{ValueUs: t.UnixMicro(), Timezone: "UTC", Precision: prec}, nil
}
