package ingest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/careflow-health/careflow/topics"
)

func withID(body, id string) string {
	return strings.Replace(body, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1)
}

// Concurrent writes to one resource, by id and by a conditional update
// on its identifier (spelt two ways), each get a version of their own:
// none is lost, and no second Patient appears.
func TestFHIRConcurrentWritesToOneResource(t *testing.T) {
	_, srv := fhirHarness(t)
	base := srv.URL + "/fhir/apps"
	pid := idOf(t, fhirDo(t, "POST", base+"/Patient", fhirPatient).body)
	const each = 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	etags := map[string]int{}
	for i := range 3 * each {
		wg.Go(func() {
			var r fhirReply
			switch i % 3 {
			case 0:
				r = fhirDo(t, "PUT", base+"/Patient/"+pid, withID(fhirPatient, pid))
			case 1:
				r = fhirDo(t, "PUT", base+"/Patient?identifier=urn:careflow:authority:HOSP|T100", fhirPatient)
			default:
				r = fhirDo(t, "PUT", base+"/Patient?identifier=urn:careflow:authority:HOSP%7CT100", fhirPatient)
			}
			mu.Lock()
			defer mu.Unlock()
			if r.status != 200 {
				t.Errorf("status %d: %s", r.status, r.body)
			}
			etags[r.header.Get("ETag")]++
		})
	}
	wg.Wait()
	if len(etags) != 3*each {
		t.Errorf("%d writes got %d distinct versions: %v", 3*each, len(etags), etags)
	}
	if r := fhirDo(t, "GET", base+"/Patient/"+pid, ""); r.header.Get("ETag") != fmt.Sprintf(`W/"%d"`, 3*each+1) {
		t.Errorf("current version %s, want %d", r.header.Get("ETag"), 3*each+1)
	}
	// Conditional creates racing, the search spelt two ways: one Patient.
	body := strings.Replace(fhirPatient, "9434765919", "9990001235", 1)
	body = strings.Replace(body, "T100", "T200", 1)
	for i := range 10 {
		wg.Go(func() {
			tok := "https://fhir.nhs.uk/Id/nhs-number|9990001235"
			if i%2 == 1 {
				tok = "https://fhir.nhs.uk/Id/nhs-number%7C9990001235"
			}
			if r := fhirDo(t, "POST", base+"/Patient", body, "If-None-Exist", "identifier="+tok); r.status != 201 && r.status != 200 {
				t.Errorf("conditional create: %d %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	if r := fhirDo(t, "PUT", base+"/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990001235", body); r.status != 200 {
		t.Errorf("after the racing creates, the conditional update finds %d: %s (two Patients?)", r.status, r.body)
	}
}

// The cases a planner can get wrong, each with what is stored.
func TestFHIRPlanning(t *testing.T) {
	h, srv := fhirHarness(t)
	base := srv.URL + "/fhir/apps"
	pid := idOf(t, fhirDo(t, "POST", base+"/Patient", fhirPatient).body)
	fhirDo(t, "PUT", base+"/Patient/"+pid, withID(fhirPatient, pid))

	// A conditional update that matches nothing may not take another
	// resource's id (it would reset it to version 1).
	other := strings.Replace(withID(fhirPatient, pid), "T100", "T999", 1)
	if r := fhirDo(t, "PUT", base+"/Patient?identifier=urn:careflow:authority:HOSP|T999", other); r.status != 400 || !strings.Contains(string(r.body), "conflict") {
		t.Errorf("a conditional update with another resource's id: %d %s", r.status, r.body)
	}
	if r := fhirDo(t, "GET", base+"/Patient/"+pid, ""); r.header.Get("ETag") != `W/"2"` {
		t.Errorf("the resource went to %s", r.header.Get("ETag"))
	}
	// If-Match as clients write it: W/"2", "2" or 2; If-None-Exist with the
	// type before the search.
	if r := fhirDo(t, "PUT", base+"/Patient/"+pid, withID(fhirPatient, pid), "If-Match", "2"); r.status != 200 || r.header.Get("ETag") != `W/"3"` {
		t.Errorf("If-Match 2: %d %s", r.status, r.body)
	}
	if r := fhirDo(t, "POST", base+"/Patient", fhirPatient, "If-None-Exist", "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"); r.status != 200 || idOf(t, r.body) != pid {
		t.Errorf("If-None-Exist with its type: %d %s", r.status, r.body)
	}
	// One transaction writing one resource twice is refused.
	twice := `{"resourceType":"Bundle","type":"transaction","entry":[
 {"resource":` + withID(fhirPatient, "p1") + `,"request":{"method":"PUT","url":"Patient/p1"}},
 {"resource":` + withID(fhirPatient, "p1") + `,"request":{"method":"PUT","url":"Patient/p1"}}]}`
	if r := fhirDo(t, "POST", base, twice); r.status != 400 || r.outcome[0] != "duplicate@Bundle.entry[1]" {
		t.Errorf("one resource twice: %d %v", r.status, r.outcome)
	}
	// Transactions whose first entry matches what is stored, each with a
	// new Observation: each is its own message (its own idempotency key),
	// so none is dropped downstream as a resend.
	for _, v := range []string{"111", "222"} {
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:00000000-0000-4000-8000-000000000001","resource":` + fhirPatient + `,
  "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"}},
 {"resource":` + strings.Replace(fhirObservation("urn:uuid:00000000-0000-4000-8000-000000000001"), "5.1", v, 1) + `,"request":{"method":"POST","url":"Observation"}}]}`
		if r := fhirDo(t, "POST", base, tx); r.status != 200 || !strings.Contains(string(r.body), `"200 OK"`) {
			t.Fatalf("transaction: %d %s", r.status, r.body)
		}
	}
	recs := h.consume(t, topics.Raw, 5) // create, two updates, two transactions
	keys := map[string]bool{}
	for _, rec := range recs {
		keys[rawOf(t, h, rec).IdempotencyKey] = true
	}
	if len(keys) != 5 {
		t.Errorf("%d raw records share idempotency keys: %v", len(recs), keys)
	}
	// A transaction whose every entry matches stores nothing.
	only := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + fhirPatient + `,
  "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"}}]}`
	if r := fhirDo(t, "POST", base, only); r.status != 200 {
		t.Fatalf("all matched: %d %s", r.status, r.body)
	}
	h.consume(t, topics.Raw, 5)
}

// When Kafka does not commit a write, the client hears 503 and nothing
// of it is visible: the raw record and the resource version were written
// in one transaction that never committed. The resend is stored once.
func TestFHIRWriteIsOneTransaction(t *testing.T) {
	h, srv := fhirHarness(t)
	base := srv.URL + "/fhir/apps"
	var fail atomic.Bool
	fail.Store(true)
	h.cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.cluster.KeepControl()
		if !fail.Load() || !req.(*kmsg.EndTxnRequest).Commit {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = 53 // TRANSACTIONAL_ID_AUTHORIZATION_FAILED: not retried
		return resp, nil, true
	})
	if r := fhirDo(t, "POST", base+"/Patient", fhirPatient); r.status != http.StatusServiceUnavailable || r.outcome[0] != "transient@" {
		t.Fatalf("with the commit refused: %d %s", r.status, r.body)
	}
	fail.Store(false)
	if r := fhirDo(t, "POST", base+"/Patient", fhirPatient); r.status != 201 {
		t.Fatalf("the resend: %d %s", r.status, r.body)
	}
	h.consume(t, topics.Raw, 1)
	h.consume(t, topics.FHIR, 1)
}
