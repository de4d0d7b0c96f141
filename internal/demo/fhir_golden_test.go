// This file checks the v2 → FHIR mapping of the demo's own messages: one
// synthetic patient's story, written by the demo's EHR and lab generators
// with a fixed seed and clock, each message parsed, mapped by normalise
// and rendered as careflow's FHIR transaction Bundle, against a golden
// file in testdata/fhir/golden (go test -update rewrites them).
// fhir_medplum_test.go delivers the same Bundles to an independent FHIR
// server and checks what it stores.

package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/stages/normalise"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/fhir/golden")

// The story's fixed inputs: the same seed, run and clock always give the
// same patient, the same messages and the same Bundles.
const (
	storySeed = 20250301
	storyRun  = "G1"
)

var storyStart = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

// storyMessage is one message of the story, as a simulated system sent it.
type storyMessage struct {
	name      string // the golden file's name, without .json
	iface     string // the careflow inbound interface it arrives on
	controlID string
	payload   []byte
}

// story is what the demo's generators write for one patient: a person
// record, a duplicate record a clerk made and its merge (A28, A28, A40,
// as next() sends them for a patient not yet admitted), an admission and
// an update (A01, A08), an ORM^O01 order, and the lab's answers to it
// (ORR^O02 accepting it, then the preliminary, final and corrected
// ORU^R01, as planCorrected sends them). Each step changes the patient as
// next() and the lab do before they write the message, so the messages
// are the ones the demo would send in that order. The analyte values
// come from the lab's value() with a seeded draw, new for each result
// as the lab's are.
type story struct {
	p           *patient
	pn          panel
	placer      string
	filler      string
	duplicate   string // the MRN of the record merged away
	msgs        []storyMessage
	values      map[string][]string // analyte LOINC code → the value each ORU sent, in order
	statuses    []string            // OBR-25 of each ORU, in order
	admitDoctor string              // the attending doctor of the A01
	doctor      string              // the attending doctor after the A08
}

func newStory(t *testing.T) *story {
	t.Helper()
	g := newEHRGenerator(storySeed, storyRun, 1)
	p := g.patients[0]
	s := &story{p: p, pn: panels[1], values: map[string][]string{}}
	at := func() time.Time { return storyStart.Add(time.Duration(len(s.msgs)) * time.Minute) }
	ehr := func(name string, build func(ctl string, now time.Time) []byte) {
		ctl := g.nextID("E")
		s.msgs = append(s.msgs, storyMessage{name: name, iface: "ehr", controlID: ctl, payload: build(ctl, at())})
	}

	// Registered: a person record first (next()'s first step, u < 0.5).
	p.registered = true
	ehr("a28-person", func(ctl string, now time.Time) []byte { return adt(p, "A28", p.mrn, ctl, now) })
	// A clerk makes a second record, announced by an A28, then merged.
	p.duplicateMRN = fmt.Sprintf("DUP%s-%d", g.run, g.seq)
	p.duplicateAnnounced = true
	ehr("a28-duplicate", func(ctl string, now time.Time) []byte { return adt(p, "A28", p.duplicateMRN, ctl, now) })
	ehr("a40-merge", func(ctl string, now time.Time) []byte { return adt(p, "A40", p.mrn, ctl, now) })
	p.duplicateAnnounced = false
	s.duplicate, p.duplicateMRN = p.duplicateMRN, ""

	// Admitted to a bed.
	p.admitted = true
	p.visit = g.nextID("V")
	p.admitTime = hl7v2.FormatTime(at())
	g.assignBed(p)
	ehr("a01-admit", func(ctl string, now time.Time) []byte { return adt(p, "A01", p.mrn, ctl, now) })
	s.admitDoctor = p.doctor
	// Another doctor takes over: an A08 (next()'s admitted branch).
	for first := p.doctor; p.doctor == first; {
		p.doctor = doctors[g.rng.IntN(len(doctors))]
	}
	s.doctor = p.doctor
	ehr("a08-update", func(ctl string, now time.Time) []byte { return adt(p, "A08", p.mrn, ctl, now) })

	// An order, as the older ORM^O01 without enhanced acknowledgement.
	s.placer = g.nextID("ORD")
	p.lastOrder, p.lastOrderPanel = s.placer, s.pn
	ehr("orm-o01-order", func(ctl string, now time.Time) []byte { return order(p, false, s.placer, s.pn, ctl, now) })
	ordered, err := hl7v2.Parse(s.msgs[len(s.msgs)-1].payload)
	if err != nil {
		t.Fatalf("the demo's ORM^O01 does not parse: %v", err)
	}

	// The lab's answers, numbered as lab.sendResult numbers them.
	rng := rand.New(rand.NewPCG(storySeed, 7))
	s.filler = fmt.Sprintf("F%s-%d", storyRun, 1)
	lab := func(i int, name string, build func(ctl string, now time.Time) []byte) {
		ctl := fmt.Sprintf("L%s-%d-%d", storyRun, 1, i)
		s.msgs = append(s.msgs, storyMessage{name: name, iface: "lab-results", controlID: ctl, payload: build(ctl, at())})
	}
	lab(1, "orr-o02-accepted", func(ctl string, now time.Time) []byte { return response(ordered, s.filler, ctl, "OK", now) })
	for i, st := range []struct{ name, status string }{
		{"oru-r01-preliminary", "P"}, {"oru-r01-final", "F"}, {"oru-r01-corrected", "C"},
	} {
		s.statuses = append(s.statuses, st.status)
		// Each result draws its values afresh, as lab.value does.
		draw := func(a analyte) (string, string) {
			v, flag := value(a, rng.Float64())
			s.values[a.code] = append(s.values[a.code], v)
			return v, flag
		}
		lab(i+2, st.name, func(ctl string, now time.Time) []byte { return result(ordered, s.filler, ctl, st.status, draw, now) })
	}
	return s
}

// raw is careflow's record of m's receipt. The message id is the event
// id, from which a Bundle's fullUrls derive, so it is fixed too.
func (m storyMessage) raw() *avro.RawMessage {
	return &avro.RawMessage{
		MessageID:      "msg-" + m.controlID,
		CorrelationID:  "corr-" + m.controlID,
		IdempotencyKey: m.iface + "|" + hospital + "|" + m.controlID,
		Interface:      m.iface,
		Transport:      avro.TransportMLLP,
		ReceivedAt:     storyStart,
		Payload:        m.payload,
		ControlID:      m.controlID,
	}
}

// bundle is m parsed, mapped by normalise and rendered as careflow
// renders every event for a FHIR destination.
func (m storyMessage) bundle() ([]byte, error) {
	msg, err := hl7v2.Parse(m.payload)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", m.name, err)
	}
	ev, err := normalise.Map(msg, m.raw())
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", m.name, err)
	}
	return fhir.TransactionBundle(ev, fhir.BundleOptions{Systems: fhir.NewSystems(nil), ID: m.controlID})
}

// TestDemoFHIRGolden renders each message of the story and compares the
// Bundle with testdata/fhir/golden/NAME.json, which google/fhir's
// validating unmarshaller must read back, after checking that the demo's
// careflow accepts the message on its interface; the lab's ORR^O02 is not
// rendered (an order response is no FHIR resource careflow writes).
func TestDemoFHIRGolden(t *testing.T) {
	s := newStory(t)
	cfg := demoConfig(t)
	unrendered := map[string]bool{"orr-o02-accepted": true}
	for _, m := range s.msgs {
		t.Run(m.name, func(t *testing.T) {
			// The story is only the demo's if the demo's careflow takes it.
			in, ok := cfg.InboundByName(m.iface)
			if !ok {
				t.Fatalf("the demo configuration has no inbound interface %s", m.iface)
			}
			parsed, err := hl7v2.Parse(m.payload)
			if err != nil {
				t.Fatalf("%s does not parse: %v", m.name, err)
			}
			if err := conforms(parsed, in.Accept); err != nil {
				t.Fatalf("interface %s would refuse %s: %v", m.iface, m.name, err)
			}
			got, err := m.bundle()
			if unrendered[m.name] {
				if !errors.Is(err, fhir.ErrNotRendered) {
					t.Fatalf("%s: error %v, want fhir.ErrNotRendered", m.name, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			goldenBundle(t, m.name, got)
		})
	}
}

// goldenBundle checks b, indented, against testdata/fhir/golden/name.json
// (-update rewrites it), and that google/fhir's validating R4
// unmarshaller reads it.
func goldenBundle(t *testing.T, name string, b []byte) {
	t.Helper()
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", "fhir", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("the Bundle differs from %s (go test -update to accept):\n%s", path, pretty.Bytes())
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Unmarshal(want); err != nil {
		t.Errorf("google/fhir refuses %s: %v", path, err)
	}
}
