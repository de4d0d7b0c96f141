package engine_test

import (
	"fmt"
	"os"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
)

// Issue 8, defect 5, end to end: a message declaring MSH-18 8859/1 with
// Latin-1 names (examples/messages/adt_a08_latin1.hl7) reaches the lab as
// UTF-8 with MSH-18 saying so, and the portal's JSON carries the names,
// not U+FFFD.
func TestLatin1NamesReachEveryDestinationIntact(t *testing.T) {
	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	portal := startPortal(t, est.Portal)
	startEngine(t, est.config(t), t.TempDir())

	msg, err := os.ReadFile("../../examples/messages/adt_a08_latin1.hl7")
	if err != nil {
		t.Fatal(err)
	}
	if utf8.Valid(msg) {
		t.Fatal("the fixture is meant to hold Latin-1 bytes")
	}
	c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer c.Close()
	if ack := send(t, c, msg); ack.Code != "AA" {
		t.Fatalf("ACK %s for the Latin-1 A08", ack.Code)
	}
	await.For(t, 30*time.Second, 20*time.Millisecond, func() error {
		if len(lab.messages()) == 0 || portal.count() == 0 {
			return fmt.Errorf("lab has %d, portal %d", len(lab.messages()), portal.count())
		}
		return nil
	})
	m := lab.messages()[0]
	if !utf8.Valid(m.Bytes()) || m.Get("PID-5.1") != "Lefèvre" || m.Get("PID-5.2") != "Renée" {
		t.Errorf("lab got PID-5 %q^%q (valid UTF-8: %v), want Lefèvre^Renée in UTF-8", m.Get("PID-5.1"), m.Get("PID-5.2"), utf8.Valid(m.Bytes()))
	}
	if got := m.Get("MSH-18"); got != "UNICODE UTF-8" {
		t.Errorf("lab got MSH-18 %q, want UNICODE UTF-8 (the bytes it is sent in)", got)
	}
	portal.mu.Lock()
	patient, _ := portal.docs[0]["patient"].(map[string]any)
	portal.mu.Unlock()
	given, _ := patient["given_names"].([]any)
	if patient["family_name"] != "Lefèvre" || len(given) == 0 || given[0] != "Renée" {
		t.Errorf("portal got patient %v, want family_name Lefèvre, given_names [Renée ...]", patient)
	}
}
