// This file names what careflow takes and sends in FHIR: the resource
// types, and the media type.

package fhir

// ContentType is the FHIR JSON media type (R4 3.1.0.1.10).
const ContentType = "application/fhir+json"

// ResourceTypes are the resource types careflow's FHIR interfaces accept
// and normalise, besides Bundle (transaction and batch).
var ResourceTypes = []string{
	"Patient", "Encounter", "ServiceRequest", "Observation",
	"DiagnosticReport", "AllergyIntolerance", "Appointment",
}
