// This file is the simulated EHR's view of its patients: a handful of
// synthetic people who are registered, admitted, have tests ordered, move
// wards, are discharged and come back, with the occasional correction
// (A08, A31, cancelled admit or discharge) and duplicate record merged away
// (A28 then A40). Each call to next advances one patient's story by one
// message, so a patient's messages always make sense in order.

package demo

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// patient is one synthetic person and where they are in their stay.
type patient struct {
	mrn, family, given, birthDate, sex string
	nhs                                string // a valid NHS number from the 999 range NHS England keeps for tests
	portal                             string // the patient portal's number for them (^^^PORTAL^PI)
	street, city, postcode, phone      string
	doctor                             string

	registered                 bool
	admitted                   bool
	discharged                 bool // just discharged: an A13 may cancel it
	visit                      string
	admitTime                  string
	ward, room, bed, priorWard string

	// duplicateMRN is a second record for the same person, created by an
	// A28 and later merged into mrn by an A40.
	duplicateMRN       string
	duplicateAnnounced bool

	// lastOrder is the placer number of the patient's newest order and
	// its panel, which the EHR may cancel.
	lastOrder      string
	lastOrderPanel panel
}

var (
	familyNames = []string{"ASHFORD", "BRAMBLE", "CALDER", "DUNMORE", "ELSWORTH", "FENWICK", "GARRICK", "HOLLOWAY", "IVERSEN", "JUNIPER"}
	givenNames  = []string{"ALEX", "BRYN", "CASEY", "DREW", "EDEN", "FINLEY", "GRAY", "HARPER", "INDIGO", "JULES"}
	streets     = []string{"Orchard Lane", "Mill Road", "Station Street", "Chapel Row", "Quarry Hill"}
	wards       = []string{"WARD-A", "WARD-B", "ICU", "MAT", "SURG"}
	doctors     = []string{"D1001", "D1002", "D1003", "D1004"}
)

// ehrGenerator writes the EHR's message stream. It is not safe for
// concurrent use: the EHR sends one message at a time.
type ehrGenerator struct {
	rng      *rand.Rand
	run      string // distinguishes this run's ids from an earlier run's
	patients []*patient
	seq      int
	// resultFirst, when set, has the lab result an order before the EHR
	// sends it (resultFirstDelay later): careflow must hold the result
	// until its order arrives (correlation_wait).
	resultFirst func(order []byte)
	deferred    []deferredOrder
}

// deferredOrder is an order the EHR sends late, after its result.
type deferredOrder struct {
	msg []byte
	due time.Time
}

// resultFirstDelay is how long after its result an overtaken order is
// sent: well inside the demo's correlation_wait (20s).
const resultFirstDelay = 3 * time.Second

// newEHRGenerator returns a generator of n synthetic patients. run goes
// into every control id, placer order number and MRN, so that a second
// demo run is not taken for resends of the first by the engine's dedup.
func newEHRGenerator(seed uint64, run string, n int) *ehrGenerator {
	g := &ehrGenerator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), run: run}
	for i := range n {
		g.patients = append(g.patients, &patient{
			mrn:       fmt.Sprintf("DEMO%s-%03d", run, i+1),
			family:    familyNames[i%len(familyNames)],
			given:     givenNames[(i*7+3)%len(givenNames)],
			birthDate: fmt.Sprintf("%04d%02d%02d", 1940+g.rng.IntN(80), 1+g.rng.IntN(12), 1+g.rng.IntN(28)),
			sex:       []string{"F", "M", "U"}[g.rng.IntN(3)],
			street:    fmt.Sprintf("%d %s", 1+g.rng.IntN(200), streets[g.rng.IntN(len(streets))]),
			city:      "Exampleton",
			postcode:  fmt.Sprintf("EX%d %dAB", 1+g.rng.IntN(9), g.rng.IntN(10)),
			phone:     fmt.Sprintf("555-01%02d", g.rng.IntN(100)),
			doctor:    doctors[g.rng.IntN(len(doctors))],
			nhs:       testNHSNumber(g.rng),
			portal:    fmt.Sprintf("PT%s-%03d", run, i+1),
		})
	}
	return g
}

func (g *ehrGenerator) nextID(prefix string) string {
	g.seq++
	return prefix + g.run + "-" + strconv.Itoa(g.seq)
}

// next returns the next message of the stream.
func (g *ehrGenerator) next(now time.Time) []byte {
	if len(g.deferred) > 0 && !now.Before(g.deferred[0].due) {
		msg := g.deferred[0].msg
		g.deferred = g.deferred[1:]
		return msg
	}
	p := g.patients[g.rng.IntN(len(g.patients))]
	ctl := g.nextID("E")
	u := g.rng.Float64()
	switch {
	case !p.registered:
		p.registered = true
		if u < 0.5 {
			return adt(p, "A28", p.mrn, ctl, now) // a person record first
		}
		p.visit = g.nextID("V")
		return adt(p, "A04", p.mrn, ctl, now) // an outpatient visit

	case p.duplicateMRN != "" && p.duplicateAnnounced:
		// The duplicate was noticed: merge it into the real record.
		msg := adt(p, "A40", p.mrn, ctl, now)
		p.duplicateMRN, p.duplicateAnnounced = "", false
		return msg

	case p.duplicateMRN != "":
		// The clerk's record knows the person, not their visits.
		p.duplicateAnnounced = true
		dup := *p
		dup.visit, dup.admitted = "", false
		return adt(&dup, "A28", p.duplicateMRN, ctl, now)

	case !p.admitted:
		switch {
		case p.discharged && u < 0.08:
			p.admitted, p.discharged = true, false
			return adt(p, "A13", p.mrn, ctl, now) // discharged by mistake
		case u < 0.55:
			p.admitted, p.discharged = true, false
			p.visit = g.nextID("V")
			p.admitTime = hl7v2.FormatTime(now)
			g.assignBed(p)
			return adt(p, "A01", p.mrn, ctl, now)
		case u < 0.7 && p.visit != "":
			return g.order(p, ctl, now)
		case u < 0.78:
			// A registration clerk creates a second record for p.
			p.duplicateMRN = fmt.Sprintf("DUP%s-%d", g.run, g.seq)
			return g.next(now)
		case u < 0.9:
			p.street = fmt.Sprintf("%d %s", 1+g.rng.IntN(200), streets[g.rng.IntN(len(streets))])
			return adt(p, "A31", p.mrn, ctl, now)
		default:
			p.phone = fmt.Sprintf("555-01%02d", g.rng.IntN(100))
			return adt(p, "A08", p.mrn, ctl, now)
		}

	default: // admitted
		switch {
		case u < 0.04 && p.lastOrder != "":
			// The doctor changes their mind: the lab may have answered
			// already, so its results can now arrive for a cancelled
			// order (result_after_cancel).
			msg := cancel(p, p.lastOrder, p.lastOrderPanel, ctl, now)
			p.lastOrder = ""
			return msg
		case u < 0.4:
			return g.order(p, ctl, now)
		case u < 0.55:
			p.priorWard = p.ward
			g.assignBed(p)
			return adt(p, "A02", p.mrn, ctl, now)
		case u < 0.7:
			p.doctor = doctors[g.rng.IntN(len(doctors))]
			return adt(p, "A08", p.mrn, ctl, now)
		case u < 0.73:
			msg := adt(p, "A11", p.mrn, ctl, now) // admitted by mistake
			p.admitted, p.visit = false, ""
			return msg
		default:
			msg := adt(p, "A03", p.mrn, ctl, now) // PV1 still shows the bed left
			p.admitted, p.discharged = false, true
			return msg
		}
	}
}

// order writes a new order for one of the lab panels, alternating between
// the older ORM^O01 and the newer OML^O21 as an EHR mid-upgrade would.
//
// A third of the orders ask for an application acknowledgement (enhanced
// mode, MSH-16 AL or ER), and now and then the lab's result overtakes its
// order: the order goes to the lab first and to careflow a few seconds
// later, with an ADT update sent in its place now.
func (g *ehrGenerator) order(p *patient, ctl string, now time.Time) []byte {
	pn := panels[g.rng.IntN(len(panels))]
	p.lastOrder, p.lastOrderPanel = g.nextID("ORD"), pn
	appAck := ""
	switch u := g.rng.Float64(); {
	case u < 0.2:
		appAck = "AL"
	case u < 0.33:
		appAck = "ER"
	}
	msg := order(p, g.rng.IntN(2) == 0, p.lastOrder, pn, ctl, now, appAck)
	if g.resultFirst != nil && g.rng.Float64() < 0.08 {
		g.resultFirst(msg)
		g.deferred = append(g.deferred, deferredOrder{msg: msg, due: now.Add(resultFirstDelay)})
		return adt(p, "A08", p.mrn, g.nextID("E"), now)
	}
	return msg
}

func (g *ehrGenerator) assignBed(p *patient) {
	p.ward = wards[g.rng.IntN(len(wards))]
	p.room = strconv.Itoa(100 + g.rng.IntN(30))
	p.bed = string(rune('A' + g.rng.IntN(4)))
}

// testNHSNumber returns a valid NHS number (modulus 11 check digit) from
// the 999 range, which is never issued to a person: the demo's patients
// are synthetic, and their numbers must never be a real patient's.
func testNHSNumber(rng *rand.Rand) string {
	for {
		d := fmt.Sprintf("999%06d", rng.IntN(1000000))
		sum := 0
		for i := range 9 {
			sum += int(d[i]-'0') * (10 - i)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check != 10 {
			return d + strconv.Itoa(check)
		}
	}
}
