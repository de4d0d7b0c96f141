// This file is v2-to-FHIR's OBR[DiagnosticReport]: one canonical order's
// results as a FHIR R4 DiagnosticReport.

package fhir

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	drpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/diagnostic_report_go_proto"

	"github.com/careflow-health/careflow/avro"
)

// reportStatuses is OBR-25 (HL7 table 0123) to DiagnosticReport.status,
// the IG's ResultStatus[Non-Queries] ConceptMap. A, M and N, which the IG
// leaves unmapped, are unknown (status is required); Y and Z, which it
// says are errors, and an OBR-25 not sent, are errors.
var reportStatuses = map[string]cpb.DiagnosticReportStatusCode_Value{
	"O": cpb.DiagnosticReportStatusCode_REGISTERED, "I": cpb.DiagnosticReportStatusCode_REGISTERED,
	"S": cpb.DiagnosticReportStatusCode_REGISTERED, "P": cpb.DiagnosticReportStatusCode_PRELIMINARY,
	"C": cpb.DiagnosticReportStatusCode_CORRECTED, "R": cpb.DiagnosticReportStatusCode_PARTIAL,
	"F": cpb.DiagnosticReportStatusCode_FINAL, "X": cpb.DiagnosticReportStatusCode_CANCELLED,
	"A": cpb.DiagnosticReportStatusCode_UNKNOWN, "M": cpb.DiagnosticReportStatusCode_UNKNOWN,
	"N": cpb.DiagnosticReportStatusCode_UNKNOWN,
}

// DiagnosticReport is o's results as a FHIR R4 DiagnosticReport (v2-to-FHIR
// OBR[DiagnosticReport]): filler then placer order number as identifiers
// (FILL, PLAC), OBR-25 status, OBR-4 code with its alternate, OBR-7
// effectiveDateTime; subject refs.Patient, encounter refs.Encounter,
// basedOn refs.BasedOn, result refs.Results (its Observations). It is
// validated; an invalid one is an *Error naming the element and its OBR
// field.
func DiagnosticReport(o *avro.Order, sys *Systems, refs Refs) (*drpb.DiagnosticReport, error) {
	st, ok := reportStatuses[strings.ToUpper(o.ResultStatus)]
	switch {
	case o.ResultStatus == "":
		return nil, &Error{Path: "DiagnosticReport.status", Source: "OBR-25", Err: errors.New("no result status; the IG makes OBR-25 required for a result")}
	case !ok:
		return nil, &Error{Path: "DiagnosticReport.status", Source: "OBR-25", Err: fmt.Errorf("result status %q is not a report's (HL7 table 0123)", o.ResultStatus)}
	}
	if o.ServiceCode == "" && o.ServiceText == "" && o.ServiceAltCode == "" {
		return nil, &Error{Path: "DiagnosticReport.code", Source: "OBR-4", Err: errors.New("no service identifier, and DiagnosticReport.code is required")}
	}
	out := &drpb.DiagnosticReport{
		Identifier: orderIdentifiers(o, sys, true),
		Status:     &drpb.DiagnosticReport_StatusCode{Value: st},
		Code:       concept(o.ServiceCode, o.ServiceText, o.ServiceSystem, o.ServiceAltCode, o.ServiceAltText, o.ServiceAltSystem),
		Subject:    reference(refs.Patient),
		Encounter:  reference(refs.Encounter),
		BasedOn:    references(refs.BasedOn),
		Result:     references(refs.Results...),
	}
	if o.ObservedAt != "" {
		dt, err := dateTime(o.ObservedAt)
		if err != nil {
			return nil, &Error{Path: "DiagnosticReport.effectiveDateTime", Source: "OBR-7", Err: err}
		}
		out.Effective = &drpb.DiagnosticReport_EffectiveX{Choice: &drpb.DiagnosticReport_EffectiveX_DateTime{DateTime: dt}}
	}
	if err := fhirvalidate.Validate(out); err != nil {
		return nil, &Error{Path: "DiagnosticReport", Source: "OBR", Err: err}
	}
	return out, nil
}
