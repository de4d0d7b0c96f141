package demo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/normalise"
	"github.com/careflow-health/careflow/stages/ownership"
)

// The portal's updates meet the portal-updates interface's rules, key the
// patient by the NHS number under its trust list, always change the
// telecom and sometimes the address; under the demo's matrix the telecom
// is delivered and the address stripped.
func TestPortalUpdatesStream(t *testing.T) {
	cfg := demoConfig(t)
	in, ok := cfg.InboundByName("portal-updates")
	if !ok {
		t.Fatal("the demo configuration has no portal-updates interface")
	}
	matrix, err := cfg.Ownership.Matrix()
	if err != nil || matrix == nil {
		t.Fatalf("the demo's ownership matrix: %v, %v", matrix, err)
	}
	var policy identity.Policy
	for _, tr := range cfg.TrustFor(in) {
		policy.Trust = append(policy.Trust, identity.Trusted{Type: tr.Type, Authority: tr.Authority, Check: tr.Check})
	}
	g := newEHRGenerator(7, "T9", numPatients)
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	var updates, withAddress int
	for i := range 2000 {
		at := now.Add(time.Duration(i) * time.Second)
		g.next(at)
		msg := g.maybePortalUpdate(at)
		if msg == nil {
			continue
		}
		updates++
		m, err := hl7v2.Parse(msg)
		if err != nil {
			t.Fatalf("portal update %d does not parse: %v", updates, err)
		}
		if err := conforms(m, in.Accept); err != nil {
			t.Fatalf("portal update %d: %v", updates, err)
		}
		if m.Get("PID-3.4") != "PORTAL" || m.Get("PID-3.5") != "PI" {
			t.Fatalf("portal update %d: PID-3[1] is %s^%s, want the portal's number", updates, m.Get("PID-3.4"), m.Get("PID-3.5"))
		}
		if key, _ := policy.PatientKey(m); key != m.Get("PID-3[2].1")+"^NHS" {
			t.Fatalf("portal update %d keyed %q, want the NHS number", updates, key)
		}
		ev, err := normalise.Map(m, &avro.RawMessage{MessageID: "m", Interface: "portal-updates"})
		if err != nil {
			t.Fatal(err)
		}
		hadAddress := len(ev.Patient.Addresses) > 0
		if hadAddress {
			withAddress++
		}
		d := matrix.Apply(ev, "portal-updates", nil)
		if len(ev.Patient.Telecoms) != 1 {
			t.Fatalf("portal update %d: telecom not delivered (%+v)", updates, d)
		}
		if stripped := strings.Join(d.Stripped, ","); hadAddress != (stripped == ownership.Address) || len(ev.Patient.Addresses) != 0 {
			t.Fatalf("portal update %d (address %v): stripped %q, delivered addresses %d", updates, hadAddress, stripped, len(ev.Patient.Addresses))
		}
	}
	if updates < 100 || withAddress == 0 || withAddress == updates {
		t.Errorf("%d portal updates, %d with an address: want an occasional update, sometimes with an address", updates, withAddress)
	}
}

// runPortalUpdates posts with the portal's token and counts the answers.
func TestRunPortalUpdates(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		m, err := hl7v2.Parse(body)
		if err != nil {
			http.Error(w, "not HL7", http.StatusBadRequest)
			return
		}
		_, _ = w.Write(hl7v2.BuildACK(m.Header(), m.Delimiters(), hl7v2.AckAA, hl7v2.ACKOptions{ControlID: "A1", Now: time.Now()}))
	}))
	defer srv.Close()
	st := &stats{}
	updates := make(chan []byte, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runPortalUpdates(ctx, srv.URL+"/hl7/portal-updates", st, updates) }()
	g := newEHRGenerator(3, "T8", 1)
	g.patients[0].registered = true
	updates <- portalA31(g.patients[0], "07700 900001", "", "PU1", time.Now())
	await.For(t, 10*time.Second, 10*time.Millisecond, func() error {
		if st.portalUpdatesACKed.Load() != 1 {
			return errors.New("no ACK counted yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auth) != 1 || auth[0] != "/hl7/portal-updates Bearer "+PortalToken {
		t.Errorf("requests %q", auth)
	}
}
