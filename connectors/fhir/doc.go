// Package fhir writes careflow's canonical events as FHIR R4 resources,
// with github.com/google/fhir/go's generated R4 protos, JSON format and
// validator rather than hand-written resource structs: the protos carry
// the specification's cardinalities, value sets and primitive formats,
// so what careflow sends a FHIR server is checked by the same rules the
// server applies.
//
// The mappings follow the HL7 v2-to-FHIR implementation guide's tables
// (github.com/HL7/v2-to-fhir, mappings/, the "FHIR R4_" files), from the
// canonical model's fields, which name their v2 source; docs/fhir.md
// lists each mapping with its source row.
package fhir
