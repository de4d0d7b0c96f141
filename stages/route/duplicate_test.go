package route

import (
	"context"
	"testing"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// One result sent twice, once from each standard (another event id, the
// FHIR form without the placer number and with 5.1 for 5.10), is routed
// once; the second gets a duplicate outcome naming the first. A
// correction, and a replay of the first event itself, are routed.
func TestRouteDropsTheSameResultInAnotherForm(t *testing.T) {
	tb := stages.NewTable(topics.OrderState)
	h := newHarnessWith(t, demoRoutes, func(c *Config) { c.Orders = tb })
	res := func(id, placer, value, status string) *avro.ClinicalEvent {
		ev := result("lab", "F")
		ev.EventID, ev.CorrelationID = id, id
		ev.Orders[0].PlacerOrderNumber, ev.Orders[0].FillerOrderNumber = placer, "F77"
		ev.Observations = []avro.Observation{{Code: "2345-7", Value: value, Status: status, OrderIndex: 0}}
		return ev
	}
	tests := []struct {
		name   string
		ev     *avro.ClinicalEvent
		routed bool
	}{
		{"the ORU^R01", res("v2", "P1", "5.10", "F"), true},
		{"the same result as a DiagnosticReport", res("fhir", "", "5.1", "F"), false},
		{"a replay of the ORU^R01's event", res("v2", "P1", "5.10", "F"), true},
		{"a corrected value", res("fhir-2", "", "5.3", "C"), true},
	}
	for _, tc := range tests {
		outs, err := h.stage.Process(context.Background(), h.input(t, tc.ev))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		tb.Commit()
		routed, dup := false, avro.DeliveryOutcome{}
		for _, o := range outs {
			if topics.DestinationOf(o.Topic) != "" {
				routed = true
			}
			var x avro.DeliveryOutcome
			if o.Topic == topics.Outcomes && h.serde.Decode(o.Value, &x) == nil && x.Status == avro.StatusDuplicate {
				dup = x
			}
		}
		if routed != tc.routed {
			t.Errorf("%s: routed %v, want %v", tc.name, routed, tc.routed)
		}
		if !tc.routed && (dup.ErrorCode != CodeDuplicateEvent || dup.ErrorText != "the same result was routed as event v2") {
			t.Errorf("%s: duplicate outcome %+v", tc.name, dup)
		}
	}
}
