// This file is v2-to-FHIR's AL1[AllergyIntolerance]: one canonical allergy
// as a FHIR R4 AllergyIntolerance.

package fhir

import (
	"errors"
	"strings"

	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	apb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/allergy_intolerance_go_proto"

	"github.com/careflow-health/careflow/avro"
)

// clinicalStatuses is AllergyIntolerance.clinicalStatus's code system.
const clinicalStatuses = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"

// allergenCategories is AL1-2 (HL7 table 0127) to category, the IG's
// AllergenType[AllergyIntoleranceCategory] ConceptMap; MA and MC have none.
var allergenCategories = map[string]cpb.AllergyIntoleranceCategoryCode_Value{
	"DA": cpb.AllergyIntoleranceCategoryCode_MEDICATION, "FA": cpb.AllergyIntoleranceCategoryCode_FOOD,
	"EA": cpb.AllergyIntoleranceCategoryCode_ENVIRONMENT, "AA": cpb.AllergyIntoleranceCategoryCode_BIOLOGIC,
	"PA": cpb.AllergyIntoleranceCategoryCode_ENVIRONMENT, "LA": cpb.AllergyIntoleranceCategoryCode_ENVIRONMENT,
}

// reactionSeverities is AL1-4 (HL7 table 0128) to reaction.severity, the
// IG's AllergySeverity[AllergyIntolerance.reaction.severity]; criticalities
// the same to criticality (AllergySeverity[AllergyIntolerance.criticality]),
// used when there is no reaction to carry a severity.
var (
	reactionSeverities = map[string]cpb.AllergyIntoleranceSeverityCode_Value{
		"SV": cpb.AllergyIntoleranceSeverityCode_SEVERE, "MO": cpb.AllergyIntoleranceSeverityCode_MODERATE,
		"MI": cpb.AllergyIntoleranceSeverityCode_MILD,
	}
	criticalities = map[string]cpb.AllergyIntoleranceCriticalityCode_Value{
		"SV": cpb.AllergyIntoleranceCriticalityCode_HIGH, "MI": cpb.AllergyIntoleranceCriticalityCode_LOW,
	}
)

// AllergyIntolerance is a as a FHIR R4 AllergyIntolerance (v2-to-FHIR
// AL1[AllergyIntolerance]): clinicalStatus active (the IG's constant:
// an AL1 lists what is current), no verificationStatus (the IG maps
// none: v2 does not say), AL1-2 category and type, AL1-3 code with its
// alternate, AL1-5 reactions as manifestations with AL1-4 as their
// severity (as criticality when there is no reaction); patient
// refs.Patient (required). It is validated.
func AllergyIntolerance(a *avro.Allergy, refs Refs) (*apb.AllergyIntolerance, error) {
	if refs.Patient == "" {
		return nil, &Error{Path: "AllergyIntolerance.patient", Source: "PID", Err: errors.New("no patient to refer to, and AllergyIntolerance.patient is required")}
	}
	out := &apb.AllergyIntolerance{
		ClinicalStatus: &dpb.CodeableConcept{Coding: []*dpb.Coding{{
			System: &dpb.Uri{Value: clinicalStatuses}, Code: &dpb.Code{Value: "active"},
		}}},
		Patient: reference(refs.Patient),
	}
	typ := strings.ToUpper(a.Type)
	if c, ok := allergenCategories[typ]; ok {
		out.Category = []*apb.AllergyIntolerance_CategoryCode{{Value: c}}
	}
	if typ != "" && typ != "MC" { // the IG's AllergyType: every 0127 allergen type but MC is an allergy
		out.Type = &apb.AllergyIntolerance_TypeCode{Value: cpb.AllergyIntoleranceTypeCode_ALLERGY}
	}
	if a.Code != "" || a.Text != "" || a.AltCode != "" {
		out.Code = concept(a.Code, a.Text, a.CodingSystem, a.AltCode, a.AltText, a.AltCodingSystem)
	}
	var manifestations []*dpb.CodeableConcept
	for _, r := range strings.Split(a.Reaction, "~") {
		if r = strings.TrimSpace(r); r != "" {
			manifestations = append(manifestations, &dpb.CodeableConcept{Text: str(r)})
		}
	}
	sev := strings.ToUpper(a.Severity)
	if len(manifestations) > 0 {
		r := &apb.AllergyIntolerance_Reaction{Manifestation: manifestations}
		if s, ok := reactionSeverities[sev]; ok {
			r.Severity = &apb.AllergyIntolerance_Reaction_SeverityCode{Value: s}
		}
		out.Reaction = []*apb.AllergyIntolerance_Reaction{r}
	} else if c, ok := criticalities[sev]; ok {
		out.Criticality = &apb.AllergyIntolerance_CriticalityCode{Value: c}
	}
	if err := fhirvalidate.Validate(out); err != nil {
		return nil, &Error{Path: "AllergyIntolerance", Source: "AL1", Err: err}
	}
	return out, nil
}
