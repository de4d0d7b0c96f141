package deliver_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/deliver"
	"github.com/careflow-health/careflow/stages/deliver/render"
)

// TestFHIRThroughStage drives a FHIR destination through deliver.Stage
// and its breaker against a real HTTP server: rejections do not trip the
// breaker, 5xx and an outage do, and recovery closes it.
func TestFHIRThroughStage(t *testing.T) {
	serde := newSerde(t)
	bundle, oo400 := readFHIR(t, "transaction-response.json"), readFHIR(t, "outcome-400.json")
	var status atomic.Int32
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		switch s := int(status.Load()); s {
		case 200:
			w.WriteHeader(s)
			_, _ = w.Write(bundle)
		case 400:
			w.WriteHeader(s)
			_, _ = w.Write(oo400)
		case 429:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(s)
		default:
			w.WriteHeader(s)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: handler}}
	srv.Start()
	t.Cleanup(func() { srv.Close() })

	st, err := deliver.New(deliver.Config{
		Destination: deliver.Destination{Name: "fhir-store", Target: render.Target{Format: "json"},
			Connector:       deliver.FHIR{BaseURL: "http://" + addr + "/fhir/r4", Timeout: 2 * time.Second},
			BreakerFailures: 3, BreakerOpenFor: 100 * time.Millisecond},
		Serde: serde,
	})
	if err != nil {
		t.Fatal(err)
	}
	in := envelope(t, serde, event("f1"))
	send := func() (avro.DeliveryOutcome, error) {
		t.Helper()
		outs, err := st.Process(context.Background(), in)
		if stages.KindOf(err) == stages.KindUnavailable && len(outs) == 0 {
			return avro.DeliveryOutcome{}, err
		}
		return outcomeOf(t, serde, outs), err
	}
	delivered := func(step string) {
		t.Helper()
		o, err := send()
		if err != nil || o.Status != avro.StatusDelivered || !slices.Equal(o.RemoteIDs, []string{"Patient/123/_history/1", "Encounter/enc-9/_history/4", "Observation/obs-77/_history/1"}) {
			t.Fatalf("%s: outcome %q with remote ids %q, err %v; want delivered with the server's ids", step, o.Status, o.RemoteIDs, err)
		}
	}
	// recovered polls until the breaker lets a trial send through and it
	// succeeds.
	recovered := func(step string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			o, err := send()
			if err == nil && o.Status == avro.StatusDelivered {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not delivered 5s after recovery (breaker %v, err %v)", step, st.BreakerState(), err)
			}
			time.Sleep(20 * time.Millisecond) // the breaker's open interval passing
		}
		if st.BreakerState() != gobreaker.StateClosed {
			t.Fatalf("%s: breaker %v after a successful trial, want closed", step, st.BreakerState())
		}
	}

	// Rejections, more than BreakerFailures of them: the breaker stays
	// closed. The OperationOutcome, which names the patient, is only the
	// dead letter's detail.
	status.Store(400)
	for i := range 5 {
		o, err := send()
		if o.Status != avro.StatusRejected || o.ErrorCode != "fhir.required" || o.ErrorLocation != "Observation.code" || o.HTTPStatus != 400 || stages.KindOf(err) != stages.KindPermanent {
			t.Fatalf("rejection %d: outcome %q %q at %q, err %v", i+1, o.Status, o.ErrorCode, o.ErrorLocation, err)
		}
		if !strings.Contains(stages.DetailOf(err), "minimum required") {
			t.Errorf("the dead letter's detail %q lacks the OperationOutcome", stages.DetailOf(err))
		}
		if strings.Contains(err.Error(), "TESTPATIENT") || strings.Contains(o.ErrorText, "TESTPATIENT") {
			t.Fatalf("the server's words reached the error or the outcome: %q, %q", err, o.ErrorText)
		}
	}
	if st.BreakerState() != gobreaker.StateClosed {
		t.Fatalf("breaker %v after rejections, want closed", st.BreakerState())
	}
	status.Store(200)
	delivered("after rejections")

	// 429: retried, and the runner told to wait as long as the server
	// asked.
	status.Store(429)
	o, err := send()
	var ra stages.RetryAfter
	if o.Status != avro.StatusRetrying || o.ErrorCode != "http.429" || stages.KindOf(err) != stages.KindTransient || !errors.As(err, &ra) || ra.RetryAfter() != 7*time.Second {
		t.Fatalf("429: outcome %q %q, err %v; want retrying, transient, Retry-After 7s", o.Status, o.ErrorCode, err)
	}
	status.Store(200)
	delivered("after 429")

	// 5xx trips it.
	status.Store(500)
	for i := 1; i <= 3; i++ {
		_, err = send()
	}
	if st.BreakerState() != gobreaker.StateOpen || stages.KindOf(err) != stages.KindUnavailable {
		t.Fatalf("after three 500s: breaker %v, err %v; want open and unavailable", st.BreakerState(), err)
	}
	status.Store(200)
	recovered("after 500s")

	// An outage: the server goes away, and comes back at the same address.
	srv.Close()
	for range 3 {
		_, err = send()
	}
	if st.BreakerState() != gobreaker.StateOpen || stages.KindOf(err) != stages.KindUnavailable {
		t.Fatalf("with the server down: breaker %v, err %v; want open and unavailable", st.BreakerState(), err)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again to bring the server back: %v", addr, err)
	}
	srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: handler}}
	srv.Start()
	recovered("after the outage")
}
