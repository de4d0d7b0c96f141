// Events the render tests share: one per HL7 message structure careflow
// writes. The patients are invented.
package render

import (
	"time"

	"github.com/careflow-health/careflow/avro"
)

func testPatient() avro.Patient {
	return avro.Patient{
		Identifiers: []avro.Identifier{
			{Value: "MRN001", AssigningAuthority: "HOSP", TypeCode: "MR", AssigningFacility: "MAIN"},
			{Value: "9434765919", AssigningAuthority: "NHS", TypeCode: "NH"},
		},
		FamilyName: "Lovelace",
		GivenNames: []string{"Ada", "Augusta"},
		BirthDate:  "18151210",
		Sex:        "F",
		Addresses: []avro.Address{
			{Street: "12 St James's Square", City: "London", PostalCode: "SW1Y 4JH", Country: "GBR", Type: "H"},
		},
	}
}

func testProvenance(msgType, trigger string) avro.Provenance {
	return avro.Provenance{
		Interface:          "pas",
		MessageID:          "01J0000000000000000000000A",
		ControlID:          "MSG0001",
		SendingApplication: "PAS",
		SendingFacility:    "MAIN",
		Version:            "2.4",
		EventTime:          "20240102030405",
		MessageTime:        "20240102030406",
		IngestTime:         time.Date(2024, 1, 2, 3, 4, 7, 123e6, time.UTC),
	}
}

func testEncounter() *avro.Encounter {
	return &avro.Encounter{
		VisitNumber:     "V100",
		PatientClass:    "I",
		PointOfCare:     "WARD7",
		Room:            "R1",
		Bed:             "B2",
		Facility:        "MAIN",
		AttendingDoctor: "D123",
		AdmitTime:       "20240102030000",
	}
}

func adtEvent(trigger, eventType string) *avro.ClinicalEvent {
	return &avro.ClinicalEvent{
		EventID:        "01J0000000000000000000000A",
		CorrelationID:  "01J0000000000000000000000A",
		IdempotencyKey: "PAS|MAIN|MSG0001",
		EventType:      eventType,
		MessageType:    "ADT",
		TriggerEvent:   trigger,
		Patient:        testPatient(),
		Encounter:      testEncounter(),
		Provenance:     testProvenance("ADT", trigger),
	}
}

func mergeEvent() *avro.ClinicalEvent {
	ev := adtEvent("A40", "merge")
	ev.Encounter = nil
	ev.Patient.PriorIdentifiers = []avro.Identifier{
		{Value: "MRN999", AssigningAuthority: "HOSP", TypeCode: "MR"},
	}
	return ev
}

func orderEvent() *avro.ClinicalEvent {
	ev := adtEvent("O01", "order")
	ev.MessageType = "ORM"
	ev.Orders = []avro.Order{{
		Control:           "NW",
		PlacerOrderNumber: "P1001",
		Status:            "IP",
		ServiceCode:       "FBC",
		ServiceText:       "Full blood count",
		ServiceSystem:     "L",
		Priority:          "R",
		OrderedAt:         "20240102030000",
		OrderingProvider:  "D123",
	}}
	return ev
}

func resultEvent() *avro.ClinicalEvent {
	ev := adtEvent("R01", "result")
	ev.MessageType = "ORU"
	ev.Encounter = nil
	ev.Provenance.CodeMaps = []string{"lab-loinc@3"}
	ev.Orders = []avro.Order{
		{Control: "RE", PlacerOrderNumber: "P1001", FillerOrderNumber: "F2001", ServiceCode: "FBC", ServiceText: "Full blood count", ServiceSystem: "L", ResultStatus: "F", ObservedAt: "20240102040000"},
		{Control: "RE", PlacerOrderNumber: "P1002", FillerOrderNumber: "F2002", ServiceCode: "CRP", ServiceText: "C-reactive protein", ServiceSystem: "L", ResultStatus: "P", ObservedAt: "20240102040000"},
	}
	ev.Observations = []avro.Observation{
		{SetID: "1", OrderIndex: 0, ValueType: "NM", Code: "718-7", Text: "Hemoglobin [Mass/volume] in Blood", CodingSystem: "LN",
			AltCode: "HGB", AltText: "Haemoglobin", AltCodingSystem: "L", Value: "135", Units: "g/L", UnitsSystem: "UCUM", ReferenceRange: "115-165", Status: "F", ObservedAt: "20240102040000"},
		{SetID: "2", OrderIndex: 0, ValueType: "NM", Code: "WBC", Text: "White cells", CodingSystem: "L", Value: "12.1", Units: "10*9/L", ReferenceRange: "4.0-11.0", AbnormalFlags: "H", Status: "F", ObservedAt: "20240102040000"},
		{SetID: "1", OrderIndex: 1, ValueType: "ST", Code: "CRP", Text: "CRP comment", CodingSystem: "L", Value: "see note~repeat in 24h", Status: "P"},
		{SetID: "1", OrderIndex: -1, ValueType: "TX", Code: "NOTE", Text: "Free note", Value: "unattached", Status: "F"},
	}
	return ev
}
