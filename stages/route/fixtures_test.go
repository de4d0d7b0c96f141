// Events and routes the route tests share. The patients are invented.

package route

import (
	"time"

	"github.com/careflow-health/careflow/avro"
)

// demoRoutes are the routes of examples/demo, written here so the tests
// pin their meaning.
var demoRoutes = []Route{
	{Name: "lab-orders", Destination: "lab",
		When: `event.message_type in ["ORM", "OML"]`},
	{Name: "lab-adt", Destination: "lab",
		When: `event.message_type == "ADT" && event.trigger_event in ["A01", "A04", "A08", "A28", "A31", "A40"]`},
	{Name: "ehr-results", Destination: "ehr-results", SLA: time.Minute,
		When: `event.message_type == "ORU" && event.trigger_event == "R01" && event.provenance.source_interface == "lab-results"`},
	{Name: "portal-adt", Destination: "portal",
		When: `event.message_type == "ADT" && event.trigger_event in ["A01", "A03", "A04", "A08"]`},
	{Name: "portal-final-results", Destination: "portal", SLA: 2 * time.Minute,
		When: `event.event_type == "result" && size(event.orders) > 0 && event.orders.all(o, o.result_status == "F")`},
}

func newEvent(msgType, trigger, eventType string) *avro.ClinicalEvent {
	return &avro.ClinicalEvent{
		EventID:        "01J0000000000000000000000A",
		CorrelationID:  "01J0000000000000000000000C",
		IdempotencyKey: "PAS|MAIN|MSG0001",
		EventType:      eventType,
		MessageType:    msgType,
		TriggerEvent:   trigger,
		Patient: avro.Patient{
			Identifiers: []avro.Identifier{{Value: "MRN001", AssigningAuthority: "HOSP", TypeCode: "MR"}},
			FamilyName:  "Lovelace",
			GivenNames:  []string{"Ada"},
			BirthDate:   "18151210",
			Sex:         "F",
		},
		Encounter: &avro.Encounter{VisitNumber: "V100", PatientClass: "I", PointOfCare: "WARD7"},
		Provenance: avro.Provenance{
			Interface:  "pas",
			MessageID:  "01J0000000000000000000000A",
			ControlID:  "MSG0001",
			Version:    "2.4",
			IngestTime: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		},
	}
}

func adt(trigger string) *avro.ClinicalEvent { return newEvent("ADT", trigger, "update") }

func order(msgType, trigger string) *avro.ClinicalEvent {
	ev := newEvent(msgType, trigger, "order")
	ev.Orders = []avro.Order{{Control: "NW", PlacerOrderNumber: "P1", ServiceCode: "FBC"}}
	return ev
}

// result is an ORU^R01 from iface whose orders have the given OBR-25s.
func result(iface string, statuses ...string) *avro.ClinicalEvent {
	ev := newEvent("ORU", "R01", "result")
	ev.Encounter = nil
	ev.Provenance.Interface = iface
	for i, s := range statuses {
		ev.Orders = append(ev.Orders, avro.Order{PlacerOrderNumber: "P", ResultStatus: s})
		ev.Observations = append(ev.Observations, avro.Observation{SetID: "1", OrderIndex: i, ValueType: "NM", Code: "HGB", Value: "135", Status: s})
	}
	return ev
}
