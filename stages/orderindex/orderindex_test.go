package orderindex

import (
	"context"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/topics"
)

// The first patient to claim a number owns it; the same patient again
// changes nothing; another patient's claim raises order_number_reused
// (keyed by that patient) and leaves the owner as it was; after
// lifecycle.Retention the number is free again; a record route did not
// write is a permanent error.
func TestClaims(t *testing.T) {
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC)
	now := t0
	idx := stages.NewTable(topics.OrderIndex)
	st, err := New(Config{Index: idx, Serde: serde, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	claim := func(patient, msg string, at time.Time) stages.Envelope {
		env, err := ClaimRecord(Claim{Order: "RP1^EHR", PatientKey: patient, MessageID: msg, At: at}, nil)
		if err != nil {
			t.Fatal(err)
		}
		env.Partition = 2
		return env
	}
	tests := []struct {
		name    string
		patient string
		at      time.Duration
		want    string // the output's topic and key, "" for none
	}{
		{"first claim owns it", "P1", 0, topics.OrderIndex + " RP1^EHR"},
		{"same patient again", "P1", time.Minute, ""},
		{"another patient", "P2", 2 * time.Minute, topics.Exceptions + " P2"},
		{"the owner stays", "P1", 3 * time.Minute, ""},
		{"after the retention", "P3", lifecycle.Retention + time.Hour, topics.OrderIndex + " RP1^EHR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = t0.Add(tc.at)
			outs, err := st.Process(context.Background(), claim(tc.patient, "m-"+tc.patient, now))
			if err != nil {
				t.Fatal(err)
			}
			idx.Commit()
			got := ""
			if len(outs) == 1 {
				got = outs[0].Topic + " " + string(outs[0].Key)
			}
			if len(outs) > 1 || got != tc.want {
				t.Fatalf("outputs %q (%d), want %q", got, len(outs), tc.want)
			}
			if outs != nil && outs[0].Topic == topics.Exceptions {
				var x avro.Exception
				if err := serde.Decode(outs[0].Value, &x); err != nil || x.Code != CodeReused || x.PlacerOrder != "RP1^EHR" || x.PatientKey != "P2" {
					t.Errorf("exception %+v (%v)", x, err)
				}
			}
		})
	}
	if _, err := st.Process(context.Background(), stages.Envelope{Topic: topics.OrderClaims, Value: []byte("not json")}); stages.KindOf(err) != stages.KindPermanent {
		t.Errorf("a record that is not a claim: %v, want a permanent error", err)
	}
}
