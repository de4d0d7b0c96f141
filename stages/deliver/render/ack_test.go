package render

import (
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// careflow's answers to a sender (application acknowledgements and return
// notifications) render MSA and ERR after MSH; an ACK carries nothing
// else, an order response its patient and order.
func TestHL7Acknowledgment(t *testing.T) {
	ack := func(msgType, trigger string) *avro.ClinicalEvent {
		return &avro.ClinicalEvent{
			EventID: "ack-1", MessageType: msgType, TriggerEvent: trigger,
			Patient: testPatient(),
			Acknowledgment: &avro.Acknowledgment{Code: "AE", ControlID: "EHR0042", Text: "lab rejected it",
				Errors: []avro.AckError{{Code: "207", ApplicationCode: "order_rejected", Location: "ORC-2", Text: "unknown test code"}}},
		}
	}
	orr := ack("ORR", "O02")
	orr.Orders = []avro.Order{{Control: "UA", PlacerOrderNumber: "RP1", PlacerNamespace: "TRAKCARE", FillerOrderNumber: "F9", FillerNamespace: "LIS"}}
	tests := []struct {
		name, version string
		ev            *avro.ClinicalEvent
		segments      string
		want          map[string]string
	}{
		{"application ACK, 2.5.1", "2.5.1", ack("ACK", "O01"), "MSH MSA ERR", map[string]string{
			"MSH-9": "ACK^O01^ACK", "MSA-1": "AE", "MSA-2": "EHR0042", "MSA-3": "lab rejected it",
			"ERR-2": "ORC^1^2^1", "ERR-3": "207^Application internal error^HL70357", "ERR-4": "E",
			"ERR-5.1": "order_rejected", "ERR-8": "unknown test code"}},
		{"application ACK, 2.3: ERR-1", "2.3", ack("ACK", "A01"), "MSH MSA ERR", map[string]string{
			"MSH-9": "ACK^A01", "MSA-2": "EHR0042", "ERR-1": "ORC^1^2^207&unknown test code&HL70357"}},
		{"return notification ORR^O02", "2.5.1", orr, "MSH MSA ERR PID ORC OBR", map[string]string{
			"MSH-9": "ORR^O02^ORR_O02", "MSA-1": "AE", "MSA-2": "EHR0042",
			"ORC-1": "UA", "ORC-2": "RP1^TRAKCARE", "ORC-3": "F9^LIS", "PID-3.1": testPatient().Identifiers[0].Value}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.ev, tc.version)
			if got := segmentNames(m); got != tc.segments {
				t.Errorf("segments %q, want %q", got, tc.segments)
			}
			for loc, want := range tc.want {
				if got := m.Get(loc); got != want {
					t.Errorf("%s = %q, want %q", loc, got, want)
				}
			}
		})
	}
}
