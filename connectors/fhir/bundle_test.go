package fhir

import "github.com/careflow-health/careflow/avro"

// demoSystems is the demo estate's table: its MRNs and applications have
// URIs configured; the NHS number is a default.
func demoSystems() *Systems {
	return NewSystems(map[string]string{
		"HOSP": "https://hospital.example.org/Id/mrn",
		"EHR":  "https://hospital.example.org/Id/ehr-order",
		"LAB":  "https://hospital.example.org/Id/lab-order",
	})
}

// admitEvent is the demo EHR's ADT^A01 (internal/demo/messages.go, adt
// and pv1) as normalise maps it: an inpatient with a bed and a visit
// number. The demo sends no AL1; one is added so the golden file shows
// AL1[AllergyIntolerance] too.
func admitEvent() *avro.ClinicalEvent {
	return &avro.ClinicalEvent{
		EventID: "msg-a01-0001", EventType: "admit", MessageType: "ADT", TriggerEvent: "A01",
		Patient: *demoPatient(),
		Encounter: &avro.Encounter{
			VisitNumber: "V0042", PatientClass: "I", PointOfCare: "WARD-A", Room: "12", Bed: "3",
			Facility: "HOSPITAL", AttendingDoctor: "D1002", AdmitTime: "20240308091500",
		},
		Allergies: []avro.Allergy{{
			Type: "DA", Code: "91936005", Text: "Allergy to penicillin", CodingSystem: "SCT",
			AltCode: "PEN", AltText: "Penicillin", AltCodingSystem: "L", Severity: "SV", Reaction: "Rash~Wheeze",
		}},
		Provenance: avro.Provenance{ControlID: "A01-0001", SendingApplication: "EHR", SendingFacility: "HOSPITAL", EventTime: "20240308091500"},
	}
}

// cbcOrder is the demo EHR's CBC order (messages.go, order): ORC-1 NW,
// ORC-5 SC, ORC-9, ORC-12, OBR-4 in LOINC.
func cbcOrder() avro.Order {
	return avro.Order{
		Control: "NW", PlacerOrderNumber: "ORD-1-000123", PlacerNamespace: "EHR", Status: "SC",
		ServiceCode: "58410-2", ServiceText: "CBC panel - Blood by Automated count", ServiceSystem: "LN",
		OrderedAt: "20240308100000", OrderingProvider: "D1002",
	}
}

// orderEvent is the demo's ORM^O01 for a CBC, with the admitted
// patient's PV1.
func orderEvent() *avro.ClinicalEvent {
	ev := admitEvent()
	ev.EventID, ev.EventType, ev.MessageType, ev.TriggerEvent = "msg-o01-0002", "order", "ORM", "O01"
	ev.Allergies = nil
	ev.Orders = []avro.Order{cbcOrder()}
	ev.Provenance.ControlID, ev.Provenance.EventTime = "O01-0002", "20240308100000"
	return ev
}

// resultEvent is the demo lab's ORU^R01 for that order (messages.go,
// result): PID-3/5/7/8 copied, no PV1, ORC-1 RE and ORC-5 CM with the
// filler number, OBR-7 and OBR-25 F, and three OBX in the lab's own codes
// which the demo's code map (examples/demo/lab-codes.csv) turned to LOINC,
// keeping the lab's as the alternate.
func resultEvent() *avro.ClinicalEvent {
	p := demoPatient()
	o := cbcOrder()
	o.Control, o.Status, o.OrderedAt, o.OrderingProvider = "RE", "CM", "", ""
	o.FillerOrderNumber, o.FillerNamespace = "F1-000456", "LAB"
	o.ObservedAt, o.ResultStatus = "20240308140000", "F"
	obx := func(set, code, text, alt, altText, value, units, rng, flag string) avro.Observation {
		return avro.Observation{
			SetID: set, OrderIndex: 0, ValueType: "NM", Code: code, Text: text, CodingSystem: "LN",
			AltCode: alt, AltText: altText, AltCodingSystem: "L", Value: value, Units: units,
			ReferenceRange: rng, AbnormalFlags: flag, Status: "F", ObservedAt: "20240308140000",
		}
	}
	return &avro.ClinicalEvent{
		EventID: "msg-r01-0003", EventType: "result", MessageType: "ORU", TriggerEvent: "R01",
		Patient: avro.Patient{Identifiers: p.Identifiers, FamilyName: p.FamilyName, GivenNames: p.GivenNames, BirthDate: p.BirthDate, Sex: p.Sex},
		Orders:  []avro.Order{o},
		Observations: []avro.Observation{
			obx("1", "6690-2", "Leukocytes [#/volume] in Blood", "WBC", "White cell count", "12.4", "10*3/uL", "4.0-11.0", "H"),
			obx("2", "718-7", "Hemoglobin [Mass/volume] in Blood", "HGB", "Haemoglobin", "13.1", "g/dL", "12.0-17.5", "N"),
			obx("3", "777-3", "Platelets [#/volume] in Blood", "PLT", "Platelets", "212", "10*3/uL", "150-400", "N"),
		},
		Provenance: avro.Provenance{ControlID: "R01-0003", SendingApplication: "LAB", SendingFacility: "HOSPITAL", EventTime: "20240308140000"},
	}
}
