package avro_test

import (
	"fmt"
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// benchEvent is the fixture ClinicalEvent with 10 observations, the size of
// a typical lab result panel.
func benchEvent(b *testing.B) *avro.ClinicalEvent {
	var e avro.ClinicalEvent
	fixture(b, "ClinicalEvent", &e)
	e.Observations = e.Observations[:0]
	for i := range 10 {
		e.Observations = append(e.Observations, avro.Observation{
			SetID: fmt.Sprint(i + 1), OrderIndex: 0, ValueType: "NM", Code: "718-7", Text: "Hemoglobin",
			CodingSystem: "LN", Value: "13.2", Units: "g/dL", ReferenceRange: "12-16", AbnormalFlags: "N",
			Status: "F", ObservedAt: "202503140830",
		})
	}
	return &e
}

func BenchmarkEncodeClinicalEvent(b *testing.B) {
	s, _ := newSerde(b)
	e := benchEvent(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeClinicalEvent(b *testing.B) {
	s, _ := newSerde(b)
	data, err := s.Encode(benchEvent(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var e avro.ClinicalEvent
		if err := s.Decode(data, &e); err != nil {
			b.Fatal(err)
		}
	}
}
