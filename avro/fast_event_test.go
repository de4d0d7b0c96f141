package avro

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// fastEventCases are events that exercise every field kind: empty and
// long strings (multi-byte lengths), nil and present encounter, empty and
// long arrays (multi-byte counts), negative ints, times.
func fastEventCases() map[string]*ClinicalEvent {
	full := &ClinicalEvent{
		EventID: "01J0000000000000000000000A", CorrelationID: "c-1", IdempotencyKey: "EHR|HOSP|MSG1",
		EventType: "result", MessageType: "ORU", TriggerEvent: "R01",
		Patient: Patient{
			Identifiers: []Identifier{{Value: "NG1", AssigningAuthority: "NG", TypeCode: "MR", AssigningFacility: "F"}, {Value: "999", TypeCode: "NH"}},
			FamilyName:  "Tëstwood", GivenNames: []string{"Amelia", "Rose"}, BirthDate: "19840622", Sex: "F",
			Addresses:        []Address{{Street: "14 Example Lane", City: "Northgate", PostalCode: "NG1 2AB", Country: "GBR", Type: "H"}},
			PriorIdentifiers: []Identifier{{Value: "OLD1"}},
		},
		Encounter: &Encounter{VisitNumber: "V1", PatientClass: "I", PointOfCare: "WARD7", Room: "BAY2", Bed: "4", Facility: "NG",
			AttendingDoctor: "C1234", AdmitTime: "20250314", DischargeTime: "", PriorPointOfCare: "ED"},
		Orders: []Order{{Control: "NW", PlacerOrderNumber: "ORD1", ServiceCode: "TROP", ResultStatus: "F"}, {Control: "NW"}},
		Provenance: Provenance{Interface: "lab-results", MessageID: "m", ControlID: "c", SendingApplication: "LAB", Version: "2.5.1",
			EventTime: "202503140830", MessageTime: "202503140830", IngestTime: time.UnixMilli(1741941000123).UTC()},
	}
	for i := range 70 {
		full.Observations = append(full.Observations, Observation{SetID: "1", OrderIndex: i%3 - 1, ValueType: "NM",
			Code: "718-7", Value: strings.Repeat("x", i*5), Status: "F"})
	}
	return map[string]*ClinicalEvent{
		"empty":           {},
		"full":            full,
		"no encounter":    {EventID: "e", Patient: Patient{GivenNames: []string{"A"}}, Provenance: Provenance{Interface: "ehr"}},
		"long text value": {Observations: []Observation{{Value: strings.Repeat("report line\\.br\\", 5000), OrderIndex: -1}}},
		"big order index": {Observations: []Observation{{OrderIndex: 1<<31 - 1}, {OrderIndex: -1 << 31}}},
	}
}

func eventCodec(t *testing.T) *goavro.Codec {
	t.Helper()
	c, err := goavro.NewCodec(schemaTexts[NameClinicalEvent])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The direct codec writes exactly goavro's bytes, and reads goavro's bytes
// into exactly what the generic path reads.
func TestFastEventMatchesGoavro(t *testing.T) {
	codec := eventCodec(t)
	for name, e := range fastEventCases() {
		t.Run(name, func(t *testing.T) {
			want, err := codec.BinaryFromNative(nil, eventToNative(e))
			if err != nil {
				t.Fatal(err)
			}
			got := appendEvent(nil, e)
			if string(got) != string(want) {
				t.Fatalf("direct encoding differs from goavro's:\n got %x\nwant %x", got, want)
			}
			native, rest, err := codec.NativeFromBinary(want)
			if err != nil || len(rest) != 0 {
				t.Fatal(err, len(rest))
			}
			slow := eventFromNative(native.(map[string]any))
			var fast ClinicalEvent
			if err := decodeEvent(want, &fast); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("direct decoding differs from goavro's:\n got %+v\nwant %+v", fast, slow)
			}
		})
	}
}

// Blocks with a negative count (followed by their size in bytes), which
// other Avro writers may use, read the same as plain blocks.
func TestFastEventNegativeBlockCount(t *testing.T) {
	e := &ClinicalEvent{Patient: Patient{GivenNames: []string{"A", "B"}}}
	plain := appendEvent(nil, e)
	// Body: 6 empty strings, empty identifiers, empty family name, then
	// given_names block: count 2 (zigzag 4).
	i := 8
	if plain[i] != 4 {
		t.Fatalf("layout assumption broken: byte %d is %d", i, plain[i])
	}
	items := appendStrings(nil, "A", "B")
	blocked := append(append([]byte{}, plain[:i]...), appendLong(appendLong(nil, -2), int64(len(items)))...)
	blocked = append(blocked, plain[i+1:]...)
	var got ClinicalEvent
	if err := decodeEvent(blocked, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Patient.GivenNames, []string{"A", "B"}) {
		t.Fatalf("given names %q", got.Patient.GivenNames)
	}
}

// Every truncation and random corruption of a valid body is an error or a
// record, never a panic or a huge allocation.
func TestFastEventMalformed(t *testing.T) {
	body := appendEvent(nil, fastEventCases()["full"])
	for n := range len(body) {
		var e ClinicalEvent
		if err := decodeEvent(body[:n], &e); err == nil {
			t.Fatalf("truncated at %d of %d: no error", n, len(body))
		}
	}
	var e ClinicalEvent
	if err := decodeEvent(append(append([]byte{}, body...), 0), &e); err == nil {
		t.Fatal("trailing byte: no error")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := append([]byte{}, body...)
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		_ = decodeEvent(b, &e)
	}
}

// Through the Serde: a malformed event body is ErrMalformed.
func TestFastEventSerdeMalformed(t *testing.T) {
	s, err := NewSerde(t.Context(), newMemRegistry())
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode(fastEventCases()["full"])
	if err != nil {
		t.Fatal(err)
	}
	var e ClinicalEvent
	if err := s.Decode(b[:len(b)-3], &e); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated event: %v, want ErrMalformed", err)
	}
}

// memRegistry is the smallest Registry: ids in registration order.
type memRegistry struct{ schemas []string }

func newMemRegistry() *memRegistry { return &memRegistry{} }

func (m *memRegistry) Register(_ context.Context, _, schema string) (int, error) {
	for i, s := range m.schemas {
		if s == schema {
			return i + 1, nil
		}
	}
	m.schemas = append(m.schemas, schema)
	return len(m.schemas), nil
}

func (m *memRegistry) SchemaByID(_ context.Context, id int) (string, error) {
	if id < 1 || id > len(m.schemas) {
		return "", errors.New("no such schema")
	}
	return m.schemas[id-1], nil
}
