package deliver_test

import (
	"bytes"
	"context"
	"reflect"
	"sync"
	"testing"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages/deliver"
	"github.com/careflow-health/careflow/stages/deliver/render"
)

// recorder is a connector that accepts everything and keeps the bytes it
// was given.
type recorder struct {
	mu   sync.Mutex
	sent [][]byte
}

func (r *recorder) Send(_ context.Context, _ string, payload []byte) (deliver.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, bytes.Clone(payload))
	return deliver.Result{Delivered: true}, nil
}

func (r *recorder) Close(context.Context) error { return nil }

// plantedClinical maps every value planted in the fixture's clinical
// fields to its path.
// notVerbatim are the fields a destination receives transformed, so
// that their planted value cannot be searched for in the bytes sent: an
// HL7 location ("PID-5") is written to ERR-2 as its components.
var notVerbatim = map[string]bool{"acknowledgment.errors.location": true}

// notInORU reports whether path is a field the fixture's structure,
// ORU_R01, has no segment for (AL1), so that an HL7 v2 destination never
// receives it whatever its fields allow (render/structure.go, carries).
func notInORU(path string) bool { return under(path, "allergies") }

func plantedClinical(t *testing.T) map[string]string {
	out := map[string]string{}
	walkValues(fullEvent(t), func(p string, v reflect.Value) {
		if f, _ := avro.LookupEventField(p); !f.Envelope && !notVerbatim[p] {
			for _, s := range plantedValues(v) {
				out[s] = p
			}
		}
	})
	return out
}

// sendFull sends the full fixture through Process to a destination with
// target and fields and returns the bytes its connector was given.
func sendFull(t *testing.T, serde *avro.Serde, target render.Target, fields *deliver.Fields) []byte {
	t.Helper()
	rec := &recorder{}
	st, err := deliver.New(deliver.Config{
		Destination: deliver.Destination{Name: "portal", Target: target, Connector: rec, Fields: fields},
		Serde:       serde,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Process(context.Background(), envelope(t, serde, fullEvent(t))); err != nil {
		t.Fatal(err)
	}
	if len(rec.sent) != 1 {
		t.Fatalf("connector got %d messages, want 1", len(rec.sent))
	}
	return rec.sent[0]
}

// TestProcessSendsOnlyAllowedFields sends the full event through Process to
// a JSON and an HL7 v2 destination under several profiles and searches the
// bytes the connector received: every planted value of a field outside the
// profile must be absent, every one inside it present.
func TestProcessSendsOnlyAllowedFields(t *testing.T) {
	serde := newSerde(t)
	targets := []render.Target{
		{Format: avro.FormatJSON},
		{Format: avro.FormatHL7v2, Version: "2.5.1", SendingApplication: "CAREFLOW", ReceivingApplication: "PORTAL"},
	}
	profiles := []struct {
		name    string
		profile []string
	}{
		{"no profile", nil},
		{"envelope only", []string{}},
		{"identity", []string{"patient.identifiers", "patient.family_name"}},
		{"demographics but no address or birth date", []string{"patient.identifiers.value", "patient.given_names", "patient.sex"}},
		{"address only", []string{"patient.addresses.postal_code", "patient.addresses.city"}},
		{"birth date and merge", []string{"patient.birth_date", "patient.prior_identifiers.value"}},
		{"results without the patient", []string{"orders.placer_order_number", "observations.code", "observations.value"}},
		{"the visit", []string{"encounter", "patient.identifiers.value"}},
	}
	planted := plantedClinical(t)
	for _, target := range targets {
		for _, p := range profiles {
			t.Run(target.Format+"/"+p.name, func(t *testing.T) {
				sent := sendFull(t, serde, target, compile(t, p.profile))
				for value, path := range planted {
					allowed := allowedBy(path, p.profile) && !(target.Format == avro.FormatHL7v2 && notInORU(path))
					if found := bytes.Contains(sent, []byte(value)); found != allowed {
						t.Errorf("%s (%s): sent = %v, want %v", path, value, found, allowed)
					}
				}
				if target.Format == avro.FormatHL7v2 {
					m, err := hl7v2.Parse(sent)
					if err != nil {
						t.Fatalf("filtered HL7 does not parse: %v", err)
					}
					if got := m.Get("MSH-9"); got != "ORU^R01^ORU_R01" {
						t.Errorf("MSH-9 = %q: the envelope must survive any profile", got)
					}
				}
			})
		}
	}
}
