package demo

import (
	"context"
	"fmt"
	"github.com/careflow-health/careflow/stages/identity"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/logbuf"
	"github.com/careflow-health/careflow/stages/codemap"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// conforms checks m against an inbound interface's accept rules the way
// the validate stage reads them: the type and version are listed, and
// every required path of every matching pattern is present.
func conforms(m *hl7v2.Message, a config.Accept) error {
	h := m.Header()
	match := func(pattern string) bool {
		typ, trig, _ := strings.Cut(pattern, "^")
		return typ == h.MessageType && (trig == "*" || trig == h.TriggerEvent)
	}
	if !slices.ContainsFunc(a.MessageTypes, match) {
		return fmt.Errorf("type %s^%s not accepted", h.MessageType, h.TriggerEvent)
	}
	if len(a.Versions) > 0 && !slices.Contains(a.Versions, h.Version) { // empty: any version
		return fmt.Errorf("version %s not accepted", h.Version)
	}
	for pattern, paths := range a.Required {
		if !match(pattern) {
			continue
		}
		for _, p := range paths {
			if !strings.Contains(p, "-") {
				if _, ok := m.Segment(p); !ok {
					return fmt.Errorf("%s^%s lacks segment %s", h.MessageType, h.TriggerEvent, p)
				}
			} else if m.Get(p) == "" {
				return fmt.Errorf("%s^%s lacks %s", h.MessageType, h.TriggerEvent, p)
			}
		}
	}
	return nil
}

func demoConfig(t *testing.T) *config.Config {
	t.Helper()
	c, err := config.Load("../../examples/demo/careflow.yaml")
	if err != nil {
		t.Fatalf("demo configuration: %v", err)
	}
	return c
}

// TestEHRStream checks that the EHR's messages parse, carry the types the
// demo promises, meet the ehr interface's accept rules, never reuse a
// control id, and tell coherent stories (a merge follows the duplicate
// record's creation).
func TestEHRStream(t *testing.T) {
	ehr, _ := demoConfig(t).InboundByName("ehr")
	g := newEHRGenerator(42, "T1", numPatients)
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	types := map[string]int{}
	ids := map[string]bool{}
	announced := map[string]bool{} // MRNs an A28 has created
	placed := map[string]bool{}    // placer numbers ordered
	cancels := 0
	for i := range 2000 {
		msg := g.next(now.Add(time.Duration(i) * time.Second))
		m, err := hl7v2.Parse(msg)
		if err != nil {
			t.Fatalf("message %d does not parse: %v\n%q", i, err, msg)
		}
		if err := conforms(m, ehr.Accept); err != nil {
			t.Fatalf("message %d: %v\n%q", i, err, msg)
		}
		h := m.Header()
		types[h.MessageType+"^"+h.TriggerEvent]++
		if ids[h.ControlID] {
			t.Fatalf("message %d reuses control id %s", i, h.ControlID)
		}
		ids[h.ControlID] = true
		switch h.MessageType + "^" + h.TriggerEvent {
		case "ADT^A28":
			announced[m.Get("PID-3.1")] = true
		case "ADT^A40":
			if prior := m.Get("MRG-1.1"); !announced[prior] {
				t.Errorf("message %d merges %s, which no A28 created", i, prior)
			}
		case "ORM^O01", "OML^O21":
			placer := m.Get("ORC-2.1")
			switch {
			case placer != m.Get("OBR-2.1"):
				t.Errorf("message %d: placer %q vs %q", i, placer, m.Get("OBR-2.1"))
			case m.Get("ORC-1") == "NW":
				placed[placer] = true
			case m.Get("ORC-1") == "CA":
				// A cancellation names an order placed before, once.
				if !placed[placer] {
					t.Errorf("message %d cancels %s, which was not placed (or was cancelled already)", i, placer)
				}
				delete(placed, placer)
				cancels++
			default:
				t.Errorf("message %d: order control %q", i, m.Get("ORC-1"))
			}
		}
	}
	if cancels == 0 {
		t.Error("no order was cancelled in 2000 messages")
	}
	for _, want := range []string{"ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A08", "ADT^A11", "ADT^A13", "ADT^A28", "ADT^A31", "ADT^A40", "ORM^O01", "OML^O21"} {
		if types[want] == 0 {
			t.Errorf("no %s in 2000 messages: %v", want, types)
		}
	}
}

// fakeEngine is an MLLP listener standing in for careflow's lab-results
// interface: it ACKs AA and keeps what it received.
type fakeEngine struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (f *fakeEngine) ServeMLLP(_ context.Context, req mllp.Request) []byte {
	f.mu.Lock()
	f.msgs = append(f.msgs, append([]byte(nil), req.Payload...))
	f.mu.Unlock()
	reply, _ := ack(req.Payload, engineApp)
	return reply
}

func (f *fakeEngine) received() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.msgs)
}

// serve runs h on a loopback port until the test ends.
func serve(t *testing.T, h mllp.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &mllp.Server{Handler: h, Logger: quiet}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func sendACK(t *testing.T, addr string, msg []byte) hl7v2.ACK {
	t.Helper()
	c := &mllp.Client{Addr: addr, ACKTimeout: 5 * time.Second}
	defer c.Close()
	reply, err := c.Send(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := hl7v2.ParseACK(reply)
	if err != nil {
		t.Fatalf("reply is not an ACK: %v\n%q", err, reply)
	}
	return a
}

// TestLabResultsOrders checks that the lab ACKs every message and sends
// exactly one final ORU per new order, for the same patient and placer
// order number, meeting the lab-results interface's accept rules.
func TestLabResultsOrders(t *testing.T) {
	resultsRules, _ := demoConfig(t).InboundByName("lab-results")
	engine := &fakeEngine{}
	engineAddr := serve(t, engine)
	st := &stats{}
	lab := newLab(st, quiet, engineAddr, "T2", 10*time.Millisecond)
	lab.plan = func() []step { return []step{{status: "F"}} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lab.sendResults(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	labAddr := serve(t, lab)

	g := newEHRGenerator(1, "T2", 1)
	p := g.patients[0]
	now := time.Now()
	orm := order(p, false, "ORD-1", panels[0], "C1", now)
	oml := order(p, true, "ORD-2", panels[1], "C2", now)
	admit := adt(p, "A01", p.mrn, "C3", now)
	for _, tc := range []struct {
		msg  []byte
		ctl  string
		name string
	}{{orm, "C1", "ORM"}, {oml, "C2", "OML"}, {admit, "C3", "ADT"}, {orm, "C1", "ORM redelivered"}} {
		a := sendACK(t, labAddr, tc.msg)
		if a.Code != hl7v2.AckAA || a.ControlID != tc.ctl {
			t.Errorf("%s: ACK %s for %s, want AA for %s", tc.name, a.Code, a.ControlID, tc.ctl)
		}
	}

	await.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := st.resultsACKed.Load(); n != 2 {
			return fmt.Errorf("%d results ACKed, want 2", n)
		}
		return nil
	})
	got := engine.received()
	if len(got) != 2 {
		t.Fatalf("engine received %d results, want 2 (one per new order, none for ADT or a redelivery)", len(got))
	}
	wantOBX := map[string]int{"ORD-1": len(panels[0].analytes), "ORD-2": len(panels[1].analytes)}
	for _, msg := range got {
		m, err := hl7v2.Parse(msg)
		if err != nil {
			t.Fatalf("result does not parse: %v", err)
		}
		if err := conforms(m, resultsRules.Accept); err != nil {
			t.Errorf("result: %v", err)
		}
		placer := m.Get("OBR-2.1")
		if m.Get("MSH-9") != "ORU^R01^ORU_R01" || m.Get("PID-3.1") != p.mrn || m.Get("OBR-25") != "F" {
			t.Errorf("result %s: MSH-9 %q, PID-3.1 matches %v, OBR-25 %q", placer, m.Get("MSH-9"), m.Get("PID-3.1") == p.mrn, m.Get("OBR-25"))
		}
		obx := m.SegmentsNamed("OBX")
		if len(obx) != wantOBX[placer] {
			t.Errorf("result %s has %d OBX, want %d", placer, len(obx), wantOBX[placer])
		}
		for _, s := range obx {
			if s.Get("11") != "F" || s.Get("5") == "" {
				t.Errorf("result %s OBX-%s: status %q value empty %v", placer, s.Get("1"), s.Get("11"), s.Get("5") == "")
			}
		}
		delete(wantOBX, placer)
	}
	if len(wantOBX) != 0 {
		t.Errorf("no result for %v", wantOBX)
	}
	if st.labReceived.Load() != 4 || st.labOrders.Load() != 3 || st.labRedelivered.Load() != 1 {
		t.Errorf("lab counted received %d orders %d redelivered %d, want 4 3 1",
			st.labReceived.Load(), st.labOrders.Load(), st.labRedelivered.Load())
	}
}

func TestEHRResultsACKs(t *testing.T) {
	st := &stats{}
	addr := serve(t, ehrResults(st))
	msg := adt(newEHRGenerator(1, "T3", 1).patients[0], "A08", "X", "C9", time.Now())
	if a := sendACK(t, addr, msg); a.Code != hl7v2.AckAA || a.ControlID != "C9" {
		t.Errorf("ACK %s for %s", a.Code, a.ControlID)
	}
	if a := sendACK(t, addr, []byte("not hl7")); a.Code != hl7v2.AckAR {
		t.Errorf("garbage ACKed %s, want AR", a.Code)
	}
	if st.ehrResultsReceived.Load() != 2 || st.ehrResultsUnparseable.Load() != 1 {
		t.Errorf("counted %d received, %d unparseable", st.ehrResultsReceived.Load(), st.ehrResultsUnparseable.Load())
	}
}

func TestPortal(t *testing.T) {
	st := &stats{}
	srv := httptest.NewServer(portal(st))
	defer srv.Close()
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/events", `{"event_type":"admit"}`, 200},
		{"POST", "/events", `{"event_type":"result"}`, 200},
		{"POST", "/events", `not json`, 400},
		{"GET", "/events", ``, 405},
		{"POST", "/other", `{}`, 404},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s %q = %d, want %d", tc.method, tc.path, tc.body, resp.StatusCode, tc.want)
		}
	}
	if st.portalReceived.Load() != 2 || st.portalBad.Load() != 1 {
		t.Errorf("portal counted %d received, %d bad; want 2, 1", st.portalReceived.Load(), st.portalBad.Load())
	}
}

// TestRunSendsAndStops runs the whole simulation against a stand-in for
// careflow's EHR interface: the EHR's messages are ACKed, the summary is
// printed, and cancelling ctx stops everything.
func TestRunSendsAndStops(t *testing.T) {
	engine := &fakeEngine{}
	ehrAddr := serve(t, engine)
	out := &logbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			EHR: ehrAddr, LabResults: "127.0.0.1:1", // nothing is ordered back in this test
			Lab: "127.0.0.1:0", EHRResults: "127.0.0.1:0", Portal: "127.0.0.1:0", Notifications: "127.0.0.1:0",
			FHIRStore: "127.0.0.1:0", IdP: "127.0.0.1:0", AppInterval: 20 * time.Millisecond, // the app's posts fail and are counted
			HTTP: "127.0.0.1:1", // portal updates fail and are counted
			Rate: 50, Out: out, Logger: quiet,
			Careflow: func(ctx context.Context) []string {
				if _, ok := ctx.Deadline(); !ok {
					return []string{"careflow asked without a deadline"}
				}
				return []string{"orders   final 3"}
			},
		})
	}()
	acked := regexp.MustCompile(`EHR -> careflow +sent +(\d+) +ACKed +(\d+)`)
	await.For(t, 10*time.Second, 50*time.Millisecond, func() error {
		m := acked.FindAllStringSubmatch(out.String(), -1)
		if len(m) == 0 {
			return fmt.Errorf("no summary yet")
		}
		if n, _ := strconv.Atoi(m[len(m)-1][2]); n == 0 {
			return fmt.Errorf("nothing ACKed yet: %s", m[len(m)-1][0])
		}
		return nil
	})
	if len(engine.received()) == 0 {
		t.Fatal("the stand-in engine received nothing")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	if !strings.Contains(out.String(), "--- final") {
		t.Error("no final summary")
	}
	// What careflow holds is printed after the flows, asked with a deadline.
	final := out.String()[strings.LastIndex(out.String(), "--- final"):]
	if !strings.Contains(final, "orders   final 3") {
		t.Errorf("the final summary lacks careflow's lines:\n%s", final)
	}
	// The FHIR app found no careflow on HTTP: its posts failed, and the
	// scope check is still to be answered.
	if !regexp.MustCompile(`apps -> careflow +sent +[1-9]\d* +accepted +0 +refused +0 +failed +[1-9]\d* +\(scope check: not answered yet\)`).MatchString(final) ||
		!strings.Contains(final, "careflow -> fhir-store   bundles      0  (refused 0)  holds nothing yet") {
		t.Errorf("the final summary lacks the FHIR app's and store's lines:\n%s", final)
	}
}

func TestRunPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Run(context.Background(), Config{Lab: ln.Addr().String(), Out: io.Discard, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "lab listener") {
		t.Errorf("Run = %v, want a lab listener error", err)
	}
}

// TestLabClosesTheLoop: for an order the lab answers ORR^O02 OK with its
// filler number, then a preliminary, a final and (in the corrected plan) a
// correction, or refuses it with ORR^O02 UA; every message meets the
// demo's lab-results rules, so each one moves the order's lifecycle.
func TestLabClosesTheLoop(t *testing.T) {
	resultsRules, _ := demoConfig(t).InboundByName("lab-results")
	for _, tc := range []struct {
		name string
		plan []step
		want []string // MSH-9.1 and ORC-1 or OBR-25 of each message
	}{
		{"corrected", planCorrected, []string{"ORR/OK", "ORU/P", "ORU/F", "ORU/C"}},
		{"refused", planRefused, []string{"ORR/UA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			engine := &fakeEngine{}
			engineAddr := serve(t, engine)
			st := &stats{}
			lab := newLab(st, quiet, engineAddr, "T3", time.Millisecond)
			lab.plan = func() []step { return tc.plan }
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- lab.sendResults(ctx) }()
			defer func() { cancel(); <-done }()
			labAddr := serve(t, lab)
			p := newEHRGenerator(1, "T3", 1).patients[0]
			if a := sendACK(t, labAddr, order(p, false, "ORD-9", panels[0], "C9", time.Now())); a.Code != hl7v2.AckAA {
				t.Fatalf("order ACK %s", a.Code)
			}
			await.For(t, 5*time.Second, 10*time.Millisecond, func() error {
				if n := len(engine.received()); n != len(tc.want) {
					return fmt.Errorf("engine received %d messages, want %d", n, len(tc.want))
				}
				return nil
			})
			for i, msg := range engine.received() {
				m, err := hl7v2.Parse(msg)
				if err != nil {
					t.Fatal(err)
				}
				if err := conforms(m, resultsRules.Accept); err != nil {
					t.Errorf("message %d: %v", i+1, err)
				}
				got := m.Get("MSH-9.1") + "/" + m.Get("ORC-1")
				if m.Get("MSH-9.1") == "ORU" {
					got = "ORU/" + m.Get("OBR-25")
				}
				if got != tc.want[i] || m.Get("ORC-2") != "ORD-9^"+ehrApp {
					t.Errorf("message %d is %s for ORC-2 %q, want %s for ORD-9^%s", i+1, got, m.Get("ORC-2"), tc.want[i], ehrApp)
				}
				if m.Get("MSH-9.1") == "ORR" && tc.want[i] == "ORR/OK" && m.Get("ORC-3.1") == "" {
					t.Errorf("the acceptance carries no filler number")
				}
			}
		})
	}
}

// The EHR's orders exercise the return path: some ask for an application
// acknowledgement (MSH-15 AL, MSH-16 AL or ER), and an order whose result
// the lab sends first (resultFirst) reaches careflow only
// resultFirstDelay later, after its result.
func TestEHROrdersReturnPath(t *testing.T) {
	g := newEHRGenerator(7, "T4", numPatients)
	early := map[string]time.Time{} // placer → when the lab was asked to result it
	g.resultFirst = func(order []byte) {
		m, err := hl7v2.Parse(order)
		if err != nil {
			t.Fatal(err)
		}
		early[m.Get("ORC-2.1")] = now0
	}
	start := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	modes := map[string]int{}
	late := 0
	for i := range 3000 {
		now := start.Add(time.Duration(i) * 500 * time.Millisecond)
		now0 = now
		m, err := hl7v2.Parse(g.next(now))
		if err != nil {
			t.Fatal(err)
		}
		h := m.Header()
		if h.MessageType != "ORM" && h.MessageType != "OML" || m.Get("ORC-1") != "NW" {
			continue
		}
		modes[h.AcceptAckType+"/"+h.AppAckType]++
		if at, ok := early[m.Get("ORC-2.1")]; ok {
			if now.Sub(at) < resultFirstDelay {
				t.Errorf("order %s sent %s after its result, want at least %s", m.Get("ORC-2.1"), now.Sub(at), resultFirstDelay)
			}
			late++
		}
	}
	if modes["/"] == 0 || modes["AL/AL"] == 0 || modes["AL/ER"] == 0 {
		t.Errorf("acknowledgement modes of the orders: %v, want original, AL/AL and AL/ER", modes)
	}
	if len(early) == 0 || late == 0 {
		t.Errorf("%d orders resulted first, %d of them sent after", len(early), late)
	}
}

var now0 time.Time // the generator's clock, for resultFirst

// The demo's patients carry valid NHS numbers from the test range, beside
// their MRN, on their real record (not on the clerk's duplicate), and the
// demo configuration keys them by it.
func TestDemoPatientsHaveNHSNumbers(t *testing.T) {
	g := newEHRGenerator(11, "T5", numPatients)
	policy := identity.Policy{}
	for _, tr := range demoConfig(t).Identity.Trust {
		policy.Trust = append(policy.Trust, identity.Trusted{Type: tr.Type, Authority: tr.Authority, Check: tr.Check})
	}
	if len(policy.Trust) == 0 {
		t.Fatal("the demo configuration has no identifier policy")
	}
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	withNHS := 0
	for i := range 500 {
		m, err := hl7v2.Parse(g.next(now.Add(time.Duration(i) * time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		nhs := m.Get("PID-3[2].1")
		if nhs == "" {
			continue // the duplicate record, or a message without PID
		}
		withNHS++
		if !strings.HasPrefix(nhs, "999") || identity.CheckDigit("nhs", nhs) != nil || m.Get("PID-3[2].5") != "NH" {
			t.Fatalf("message %d: PID-3[2] %q (%s) is not a valid test-range NHS number", i, nhs, m.Get("PID-3[2].5"))
		}
		if key, invalid := policy.PatientKey(m); key != nhs+"^NHS" || len(invalid) != 0 {
			t.Fatalf("message %d keyed %q (%v), want %s^NHS", i, key, invalid, nhs)
		}
	}
	if withNHS < 400 {
		t.Errorf("%d of 500 messages carry an NHS number", withNHS)
	}
}

// The demo lab reports under its own codes, and the demo's code maps turn
// each into the LOINC code of the analyte, but for the few left unmapped
// on purpose; every unit it sends is in the UCUM map.
func TestLabCodesAgainstDemoMaps(t *testing.T) {
	c := demoConfig(t)
	var loincMap, ucumMap *codemap.Map
	for _, cm := range c.Codes {
		switch cm.Name {
		case "lab-loinc":
			loincMap = cm.Table
		case "lab-ucum":
			ucumMap = cm.Table
		}
	}
	if loincMap == nil || ucumMap == nil {
		t.Fatalf("demo configuration lacks the lab-loinc or lab-ucum map: %+v", c.Codes)
	}
	var unmapped []string
	for _, pn := range panels {
		for _, a := range pn.analytes {
			local, ok := labCodes[a.code]
			if !ok {
				t.Errorf("analyte %s has no lab code", a.code)
				continue
			}
			e, ok := loincMap.Lookup(labSystem, local[0])
			switch {
			case !ok:
				unmapped = append(unmapped, local[0])
			case e.Code != a.code || e.System != loinc:
				t.Errorf("lab code %s maps to %s^%s, want %s^LN", local[0], e.Code, e.System, a.code)
			}
			if e, ok := ucumMap.Lookup("", a.units); !ok || e.System != "UCUM" {
				t.Errorf("unit %q of %s is not in the UCUM map", a.units, a.code)
			}
		}
	}
	if strings.Join(unmapped, ",") != "HDL,TRIG,INR" {
		t.Errorf("unmapped lab codes %v, want HDL, TRIG and INR", unmapped)
	}
}
