// This file embeds the record schemas and names them. A schema's subject in
// the registry is the record's full name (RecordNameStrategy): outbound
// topics are created per destination at run time, so a topic-named subject
// would multiply one schema over many subjects and many ids.

package avro

import (
	"embed"
	"maps"
)

// Full names of careflow's records. Each is also the record's subject in
// the schema registry.
const (
	NameRawMessage      = "careflow.RawMessage"
	NameClinicalEvent   = "careflow.ClinicalEvent"
	NameDeliveryOutcome = "careflow.DeliveryOutcome"
	NameDeadLetter      = "careflow.DeadLetter"
	NameAuditEvent      = "careflow.AuditEvent"
)

//go:embed RawMessage.avsc ClinicalEvent.avsc DeliveryOutcome.avsc DeadLetter.avsc AuditEvent.avsc
var schemaFiles embed.FS

// schemaTexts maps each full name to its schema text, read once at init so
// that a missing embed fails the first test rather than the first encode.
var schemaTexts = func() map[string]string {
	m := make(map[string]string, 5)
	for name, file := range map[string]string{
		NameRawMessage:      "RawMessage.avsc",
		NameClinicalEvent:   "ClinicalEvent.avsc",
		NameDeliveryOutcome: "DeliveryOutcome.avsc",
		NameDeadLetter:      "DeadLetter.avsc",
		NameAuditEvent:      "AuditEvent.avsc",
	} {
		b, err := schemaFiles.ReadFile(file)
		if err != nil {
			panic("avro: embedded schema " + file + " missing: " + err.Error())
		}
		m[name] = string(b)
	}
	return m
}()

// Schemas returns the embedded schema texts keyed by full record name, for
// tools that register or print them. The map is the caller's to change.
func Schemas() map[string]string { return maps.Clone(schemaTexts) }
