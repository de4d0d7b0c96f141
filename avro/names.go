package avro

// Transports: how a message reaches careflow (RawMessage.Transport) or
// leaves it (a destination's transport). The configuration, ingest and
// the engine all spell them with these.
const (
	TransportMLLP = "mllp"
	TransportHTTP = "http"
	// TransportFHIR is a FHIR R4 REST interface (/fhir/{name}/) or
	// destination.
	TransportFHIR = "fhir"
)

// Formats a destination receives an event in: an HL7 v2 message rendered
// from the canonical model, or the ClinicalEvent itself as JSON.
const (
	FormatHL7v2 = "hl7v2"
	FormatJSON  = "json"
	// FormatFHIR is a FHIR R4 transaction Bundle (docs/fhir.md).
	FormatFHIR = "fhir"
)
