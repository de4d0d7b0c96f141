package identity

import (
	"slices"
	"testing"

	"github.com/careflow-health/careflow/avro"
)

func TestBusinessKeys(t *testing.T) {
	result := func(placer, filler string, obs ...avro.Observation) *avro.ClinicalEvent {
		return &avro.ClinicalEvent{EventType: "result", Orders: []avro.Order{{PlacerOrderNumber: placer, FillerOrderNumber: filler}}, Observations: obs}
	}
	glucose := avro.Observation{Code: "2345-7", Value: "5.10", Status: "F", Units: "mmol/L"}
	glucoseAsFHIR := avro.Observation{Code: "2345-7", Value: "5.1", Status: "F", Units: "mmol/l", Text: "Glucose"}
	corrected := avro.Observation{Code: "2345-7", Value: "5.3", Status: "C"}
	sodium := avro.Observation{Code: "2951-2", Value: "140", Status: "F"}
	at := func(o avro.Observation, t string) avro.Observation { o.ObservedAt = t; return o }
	ns := func(ev *avro.ClinicalEvent, n string) *avro.ClinicalEvent {
		ev.Orders[0].PlacerNamespace = n
		return ev
	}
	shares := func(a, b []string) bool {
		return slices.ContainsFunc(a, func(k string) bool { return slices.Contains(b, k) })
	}
	tests := []struct {
		name string
		a, b *avro.ClinicalEvent
		same bool
	}{
		{"v2 with both numbers, FHIR with the filler's only; 5.10 is 5.1", result("P1", "F1", glucose, sodium), result("", "F1", sodium, glucoseAsFHIR), true},
		{"FHIR with the placer's only", result("P1", "F1", glucose), result("P1", "", glucoseAsFHIR), true},
		{"a corrected value is another event", result("P1", "F1", glucose), result("P1", "F1", corrected), false},
		{"another order", result("P1", "F1", glucose), result("P2", "F2", glucose), false},
		{"one more observation", result("P1", "F1", glucose), result("P1", "F1", glucose, sodium), false},
		{"the same value observed an hour later (a serial reading)", result("P1", "F1", at(glucose, "202401020400")), result("P1", "F1", at(glucose, "202401020500")), false},
		{"the same minute, seconds apart", result("P1", "F1", at(glucose, "20240102040010")), result("P1", "F1", at(glucoseAsFHIR, "20240102040055")), true},
		{"another system's order 1234", ns(result("P1", "", glucose), "EHR"), ns(result("P1", "", glucose), "PAS"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := shares(BusinessKeys(tc.a), BusinessKeys(tc.b)); got != tc.same {
				t.Errorf("share a key: %v, want %v\n%v\n%v", got, tc.same, BusinessKeys(tc.a), BusinessKeys(tc.b))
			}
		})
	}
	if k := BusinessKeys(&avro.ClinicalEvent{EventType: "update"}); k != nil {
		t.Errorf("an ADT update has keys %v", k)
	}
	if k := BusinessKeys(&avro.ClinicalEvent{EventType: "result"}); k != nil {
		t.Errorf("a result without observations has keys %v", k)
	}
	a := BusinessKeys(&avro.ClinicalEvent{EventType: "order", Orders: []avro.Order{{Control: "NW", PlacerOrderNumber: "P1", ServiceCode: "GLU"}}})
	b := BusinessKeys(&avro.ClinicalEvent{EventType: "order", Orders: []avro.Order{{Control: "CA", PlacerOrderNumber: "P1", ServiceCode: "GLU"}}})
	if len(a) != 1 || shares(a, b) {
		t.Errorf("order keys: new %v, cancel %v", a, b)
	}
}
