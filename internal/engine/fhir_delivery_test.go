package engine_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/peer"
)

// labADT and labORU are a patient's admission and glucose result as the
// lab's feed sends them (the estate routes lab-results' ADT and ORU to
// the FHIR store).
func labADT(trigger, nhsNumber, mrn, id string) []byte {
	return []byte(strings.Join([]string{
		"MSH|^~\\&|PAS|HOSP|CAREFLOW|HOSP|20240102030405||ADT^" + trigger + "^ADT_A01|" + id + "|P|2.5.1",
		"EVN|" + trigger + "|20240102030405",
		"PID|1||" + nhsNumber + "^^^NHS^NH~" + mrn + "^^^HOSP^MR||DOE^JANE||19800101|F|||1 HIGH ST^^LEEDS^^LS1 1AA^GBR^H",
		"PV1|1|I|WARD1^101^A^HOSP||||1234^SMITH^JOHN||||||||||||V" + mrn + "|||||||||||||||||||||||||20240102030405",
	}, "\r") + "\r")
}

func labORU(nhsNumber, mrn, id, placer, filler, value string) []byte {
	return []byte(strings.Join([]string{
		"MSH|^~\\&|LAB|LAB|EHR|HOSP|20240102040000||ORU^R01|" + id + "|P|2.5.1",
		"PID|1||" + nhsNumber + "^^^NHS^NH~" + mrn + "^^^HOSP^MR||DOE^JANE||19800101|F",
		"ORC|RE|" + placer + "^EHR|" + filler + "^LIS",
		"OBR|1|" + placer + "^EHR|" + filler + "^LIS|2345-7^Glucose^LN|||20240102030405||||||||||||||||||F",
		"OBX|1|NM|2345-7^Glucose [Mass/volume] in Serum or Plasma^LN||" + value + "|mmol/L^mmol/L^UCUM|3.9-5.5||||F|||20240102035000",
	}, "\r") + "\r")
}

// fhirCount is how many resources of typ the server holds for query.
func fhirCount(t *testing.T, base, typ, query string) (int, error) {
	resp, err := http.Get(base + "/" + typ + "?" + query)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		return 0, err
	}
	return len(b.Entry), nil
}

// Issue 12: the lab's ADT and result, delivered as FHIR transaction
// Bundles to an independent FHIR server (@medplum/fhir-router), are
// stored as one Patient (by NHS number), its Encounter, the result's
// DiagnosticReport and Observation; an update and a resend of the
// admission update the same Patient rather than adding another.
func TestFHIRDestinationMedplum(t *testing.T) {
	store := peer.FHIRServer(t)
	est := newFHIREstate(t, store)
	startEngine(t, est.config(t), "")
	lab := &mllp.Client{Addr: est.LabResults, ACKTimeout: 10 * time.Second}
	defer lab.Close()
	n := nhs(21)
	for _, m := range [][]byte{labADT("A01", n, "M21", "ADT1"), labADT("A08", n, "M21", "ADT2"), labADT("A08", n, "M21", "ADT3"),
		labORU(n, "M21", "ORU1", "P21", "F21", "5.4")} {
		if ack := send(t, lab, m); ack.Code != hl7v2.AckAA {
			t.Fatalf("lab-results answered %s", ack.Code)
		}
	}
	ident := "identifier=" + url.QueryEscape("https://fhir.nhs.uk/Id/nhs-number|"+n)
	await.For(t, 60*time.Second, 100*time.Millisecond, func() error {
		for _, c := range []struct {
			typ, query string
			want       int
		}{
			{"Patient", ident, 1},
			{"Observation", "code=" + url.QueryEscape("http://loinc.org|2345-7"), 1},
			{"DiagnosticReport", "", 1},
			{"Encounter", "", 1},
		} {
			got, err := fhirCount(t, store, c.typ, c.query)
			if err != nil {
				return err
			}
			if got != c.want {
				return fmt.Errorf("the store holds %d %s (%s), want %d", got, c.typ, c.query, c.want)
			}
		}
		return nil
	})
	// The Observation points at the one Patient.
	resp, err := http.Get(store + "/Patient?" + ident)
	if err != nil {
		t.Fatal(err)
	}
	var pb struct {
		Entry []struct {
			Resource struct{ ID string } `json:"resource"`
		} `json:"entry"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&pb)
	resp.Body.Close()
	if got, _ := fhirCount(t, store, "Observation", "subject=Patient/"+pb.Entry[0].Resource.ID); got != 1 {
		t.Errorf("%d Observations point at the Patient, want 1", got)
	}
}

// fhirStandIn is a FHIR destination that can be down: while down it
// answers 503 with Retry-After, or drops connections; up, it answers
// each transaction with a transaction-response and counts the Bundles by
// their identifier (careflow's control id), so redeliveries show.
type fhirStandIn struct {
	mu      sync.Mutex
	bundles map[string]int
	down    atomic.Bool
	refused atomic.Int64
	srv     *httptest.Server
}

func startFHIRStandIn(t *testing.T) *fhirStandIn {
	s := &fhirStandIn{bundles: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if s.down.Load() {
			s.refused.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}`, http.StatusServiceUnavailable)
			return
		}
		var b struct {
			Identifier struct{ Value string } `json:"identifier"`
			Entry      []json.RawMessage      `json:"entry"`
		}
		if json.Unmarshal(body, &b) != nil {
			http.Error(w, "not a Bundle", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.bundles[b.Identifier.Value]++
		s.mu.Unlock()
		var entries []string
		for i := range b.Entry {
			entries = append(entries, fmt.Sprintf(`{"response":{"status":"201 Created","location":"Resource/%d/_history/1"}}`, i))
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[%s]}`, strings.Join(entries, ","))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fhirStandIn) counts() (bundles, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.bundles {
		bundles++
		max = maxInt(max, n)
	}
	return bundles, max
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// Issue 12: a FHIR destination's outage is survived as an MLLP one is:
// 503s with Retry-After are retried, the breaker opens (the admin page's
// metric says so) and closes once the server is back, and every event is
// delivered once, none lost.
func TestFHIRDestinationOutage(t *testing.T) {
	store := startFHIRStandIn(t)
	est := newFHIREstate(t, store.srv.URL)
	startEngine(t, est.config(t), "")
	lab := &mllp.Client{Addr: est.LabResults, ACKTimeout: 10 * time.Second}
	defer lab.Close()
	store.down.Store(true)
	const n = 6
	for i := range n {
		if ack := send(t, lab, labADT("A08", nhs(30+i), fmt.Sprintf("M3%d", i), fmt.Sprintf("OUT%d", i))); ack.Code != hl7v2.AckAA {
			t.Fatalf("lab-results answered %s", ack.Code)
		}
	}
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		if m := metric(t, est.Admin, `careflow_deliver_breaker_state{destination="store"}`); m != "2" {
			return fmt.Errorf("breaker state %q, want 2 (open)", m)
		}
		return nil
	})
	if b, _ := store.counts(); b != 0 {
		t.Fatalf("%d bundles stored while the server was down", b)
	}
	store.down.Store(false)
	await.For(t, 60*time.Second, 100*time.Millisecond, func() error {
		if b, _ := store.counts(); b != n {
			return fmt.Errorf("%d of %d events delivered", b, n)
		}
		return nil
	})
	if _, max := store.counts(); max != 1 {
		t.Errorf("a Bundle was delivered %d times", max)
	}
	if store.refused.Load() == 0 {
		t.Error("the outage refused nothing")
	}
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		if m := metric(t, est.Admin, `careflow_deliver_breaker_state{destination="store"}`); m != "0" {
			return fmt.Errorf("breaker state %q, want 0 (closed)", m)
		}
		return nil
	})
}

// metric reads one series' value from the admin endpoint's /metrics.
func metric(t *testing.T, admin, series string) string {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// Issue 12: one result, sent by the lab as an ORU^R01 over MLLP and by
// its API as a FHIR transaction (Patient, DiagnosticReport, Observation),
// reaches the EHR once; a new value sent as a FHIR Observation reaches the
// EHR as an ORU^R01 (FHIR → v2), and a Patient written over FHIR reaches
// the EHR's ADT inbox as an ADT^A28, its update as an ADT^A31.
func TestFHIRCrossFormatDedup(t *testing.T) {
	est := newFHIREstate(t, "http://127.0.0.1:1/fhir")
	results := startReceiver(t, est.EHRResults)
	adts := startReceiver(t, est.EHRADT)
	startEngine(t, est.config(t), "")
	lab := &mllp.Client{Addr: est.LabResults, ACKTimeout: 10 * time.Second}
	defer lab.Close()
	tok := est.token(t, "apps", "system/*.write")
	n := nhs(40)

	if a := fhirRequest(t, "POST", est.base("apps")+"/Patient", tok, fhirPatientJSON(n, "M40")); a.status != 201 {
		t.Fatalf("patient: %d %s", a.status, a.body)
	}
	adts.await(t, func(m *hl7v2.Message) string {
		return m.Get("MSH-9.1") + "^" + m.Get("MSH-9.2") + " " + m.Get("PID-3[1].1")
	}, "ADT^A28 "+n)

	if ack := send(t, lab, labORU(n, "M40", "ORU40", "P40", "F40", "5.10")); ack.Code != hl7v2.AckAA {
		t.Fatalf("lab-results answered %s", ack.Code)
	}
	results.await(t, func(m *hl7v2.Message) string { return m.Get("OBX-5") }, "5.10")

	report := `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000041","resource":` + string(fhirPatientJSON(n, "M40")) + `,
  "request":{"method":"PUT","url":"Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|` + n + `"}},
 {"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000042","resource":{"resourceType":"Observation","status":"final",
   "code":{"coding":[{"system":"http://loinc.org","code":"2345-7","display":"Glucose [Mass/volume] in Serum or Plasma"}]},
   "subject":{"reference":"urn:uuid:00000000-0000-4000-8000-000000000041"},
   "effectiveDateTime":"2024-01-02T03:50:00Z",
   "valueQuantity":{"value":5.1,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}},
  "request":{"method":"POST","url":"Observation"}},
 {"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000043","resource":{"resourceType":"DiagnosticReport","status":"final",
   "identifier":[{"system":"urn:careflow:authority:LIS","value":"F40","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"FILL"}]}}],
   "code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},
   "subject":{"reference":"urn:uuid:00000000-0000-4000-8000-000000000041"},
   "result":[{"reference":"urn:uuid:00000000-0000-4000-8000-000000000042"}]},
  "request":{"method":"POST","url":"DiagnosticReport"}}]}`
	if a := fhirRequest(t, "POST", est.base("apps"), tok, []byte(report)); a.status != 200 {
		t.Fatalf("transaction: %d %s", a.status, a.body)
	}
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		if m := metric(t, est.Admin, "careflow_route_duplicate_events_total"); m != "1" {
			return fmt.Errorf("duplicate events %q, want 1", m)
		}
		return nil
	})

	obs := `{"resourceType":"Observation","status":"final",
 "code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},
 "subject":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + n + `"}},
 "valueQuantity":{"value":6.2,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}}`
	if a := fhirRequest(t, "POST", est.base("apps")+"/Observation", tok, []byte(obs)); a.status != 201 {
		t.Fatalf("observation: %d %s", a.status, a.body)
	}
	results.await(t, func(m *hl7v2.Message) string { return m.Get("OBX-5") }, "5.10", "6.2")
	last := results.messages()[1]
	if last.Get("MSH-9.1") != "ORU" || last.Get("MSH-9.2") != "R01" || last.Get("OBX-3.1") != "2345-7" || !strings.Contains(last.Get("PID-3"), n) {
		t.Errorf("the FHIR Observation as v2: MSH-9 %s^%s OBX-3 %s PID-3 %s", last.Get("MSH-9.1"), last.Get("MSH-9.2"), last.Get("OBX-3.1"), last.Get("PID-3"))
	}
	// An Observation on its own is still a whole ORU_R01: an ORC and OBR
	// for it, the API's id as the filler number under the interface.
	if _, ok := last.Segment("OBR"); !ok || last.Get("OBR-4.1") != "2345-7" || last.Get("OBR-3.2") != "APPS" || last.Get("OBR-3.1") == "" || last.Get("ORC-1") != "RE" {
		t.Errorf("the FHIR Observation's ORC/OBR: ORC-1 %q OBR-3 %q OBR-4 %q", last.Get("ORC-1"), last.Get("OBR-3"), last.Get("OBR-4"))
	}

	upd := fhirPatientJSON(n, "M40")
	if a := fhirRequest(t, "PUT", est.base("apps")+"/Patient?identifier="+url.QueryEscape("https://fhir.nhs.uk/Id/nhs-number|"+n), tok, upd); a.status != 200 {
		t.Fatalf("patient update: %d %s", a.status, a.body)
	}
	adts.await(t, func(m *hl7v2.Message) string {
		return m.Get("MSH-9.1") + "^" + m.Get("MSH-9.2") + " " + m.Get("PID-3[1].1")
	}, "ADT^A28 "+n, "ADT^A31 "+n)
}
