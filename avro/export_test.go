package avro

// EventToNative exposes the ClinicalEvent conversion so that tests can
// write records with schema versions other than the embedded one.
var EventToNative = eventToNative
