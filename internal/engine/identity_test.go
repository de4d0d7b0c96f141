package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/stages/review"
	"github.com/careflow-health/careflow/stages/route"
	"github.com/careflow-health/careflow/topics"
)

const identityYAML = `
kafka:
  partitions: 3
admin: {listen: %[1]s}
http: {listen: %[5]s}
identity:
  trust:
    - {type: NH, authority: NHS, check: nhs}
    - {type: MR, authority: HOSP}
inbound:
  - name: ehr
    transport: mllp
    listen: %[2]s
    accept:
      message_types: ["ADT^*"]
  - name: clinic
    transport: mllp
    listen: %[3]s
    accept:
      message_types: ["ADT^*"]
destinations:
  - name: lab
    transport: mllp
    address: %[4]s
    format: hl7v2
    hl7_version: "2.5.1"
routes:
  - name: adt-to-lab
    destination: lab
    when: 'event.message_type == "ADT"'
`

type identityEstate struct{ admin, ehr, clinic, lab, http string }

func (e identityEstate) config(t *testing.T) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "careflow.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, identityYAML, e.admin, e.ehr, e.clinic, e.lab, e.http), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// nhs is the n-th valid NHS number of the 999 test range: nine digits
// and the modulus 11 check digit (a remainder giving 10 has none).
func nhs(n int) string {
	for i := n * 7; ; i++ {
		d := fmt.Sprintf("999%06d", i)
		sum := 0
		for j, c := range d {
			sum += int(c-'0') * (10 - j)
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

// adtWith is an ADT^trigger with PID-3 pid3 (CX repetitions as written)
// and more segments after PID. The given name is controlID, so that what
// a destination receives names the message it came from.
func adtWith(trigger, controlID, pid3 string, more ...string) []byte {
	segs := append([]string{
		"MSH|^~\\&|EHR|HOSP|LAB|LAB|20240102030405||ADT^" + trigger + "|" + controlID + "|P|2.5.1",
		"EVN|" + trigger + "|20240102030405",
		"PID|1||" + pid3 + "||DOE^" + controlID + "||19800101|F", // the name says which message the lab got
	}, more...)
	return []byte(strings.Join(segs, "\r") + "\r")
}

func mr(v string) string  { return v + "^^^HOSP^MR" }
func nh(v string) string  { return v + "^^^NHS^NH" }
func cli(v string) string { return v + "^^^CLINIC^MR" }

// eventKeys is every careflow.events record's key, by the sender's
// control id.
func eventKeys(t *testing.T, eng *engine.Engine) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range readTopic(t, eng.Brokers(), topics.Events, 1<<20, 300*time.Millisecond) {
		var ev avro.ClinicalEvent
		if err := eng.Serde().Decode(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		out[ev.Provenance.ControlID] = string(r.Key)
	}
	return out
}

func exceptionsNamed(t *testing.T, eng *engine.Engine, code string) []avro.Exception {
	t.Helper()
	var out []avro.Exception
	for _, r := range readTopic(t, eng.Brokers(), topics.Exceptions, 1<<20, 300*time.Millisecond) {
		var x avro.Exception
		if err := eng.Serde().Decode(r.Value, &x); err != nil {
			t.Fatal(err)
		}
		if x.Code == code {
			out = append(out, x)
		}
	}
	return out
}

// Issue 11's identity cases, end to end over MLLP with the broker
// in-process: one person known by two MRNs and one NHS number has one
// key; a second NHS number for a known MRN is held for review (approved:
// delivered once; rejected: recorded with its reason; decided twice:
// refused); a number failing its check digit is an exception; an A40
// then an A08 for the retired MRN reaches the lab under the survivor, in
// order; a merge chain reaches the last survivor; a merge of a patient
// never seen and an unmerge (A37) are held; and after a restart the index
// is rebuilt from careflow.patients.
func TestIdentityEndToEnd(t *testing.T) {
	p := func() string { return freeport.For(t) }
	est := identityEstate{admin: p(), ehr: p(), clinic: p(), lab: p(), http: p()}
	lab := startReceiver(t, est.lab)
	data := t.TempDir()
	cfg := est.config(t)
	eng := startEngine(t, cfg, data)
	ehr := &mllp.Client{Addr: est.ehr, ACKTimeout: 10 * time.Second}
	defer ehr.Close()
	clinic := &mllp.Client{Addr: est.clinic, ACKTimeout: 10 * time.Second}
	defer clinic.Close()
	sendOK := func(c *mllp.Client, m []byte) {
		t.Helper()
		if ack := send(t, c, m); ack.Code != hl7v2.AckAA {
			t.Fatalf("ACK %s (%s), want AA", ack.Code, ack.Text)
		}
	}
	keyed := func(want map[string]string) {
		t.Helper()
		await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
			got := eventKeys(t, eng)
			for id, key := range want {
				if got[id] != key {
					return fmt.Errorf("event %s keyed %q, want %q", id, got[id], key)
				}
			}
			return nil
		})
	}
	n1, n2, n3, n4 := nhs(1), nhs(2), nhs(3), nhs(4)

	// One person, two MRNs (the EHR's and the clinic's), one NHS number;
	// the clinic's later message names only its own MRN.
	sendOK(ehr, adtWith("A08", "ONE-1", mr("H1")+"~"+nh(n1)))
	sendOK(clinic, adtWith("A08", "ONE-2", cli("C1")+"~"+nh(n1)))
	sendOK(clinic, adtWith("A08", "ONE-3", cli("C1")))
	keyed(map[string]string{"ONE-1": n1 + "^NHS", "ONE-2": n1 + "^NHS", "ONE-3": n1 + "^NHS"})

	// A known MRN with another NHS number: held, twice.
	sendOK(ehr, adtWith("A08", "CON-1", mr("H2")+"~"+nh(n2)))
	sendOK(ehr, adtWith("A08", "CON-2", mr("H2")+"~"+nh(n3)))
	sendOK(ehr, adtWith("A08", "CON-3", mr("H2")+"~"+nh(n4)))
	opts := []kgo.Opt{kgo.SeedBrokers(eng.Brokers()...)}
	var held []*avro.Review
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		q, err := review.Read(context.Background(), opts, eng.Serde())
		if err != nil {
			return err
		}
		held = q.List(avro.ReviewPending)
		if len(held) != 2 {
			return fmt.Errorf("%d pending reviews, want 2", len(held))
		}
		return nil
	})
	byControl := map[string]*avro.Review{}
	for _, x := range held {
		if x.Code != "identity_conflict" || x.Location != "PID-3[2]" || strings.Contains(x.Reason, n3) {
			t.Errorf("review %+v: want identity_conflict at PID-3[2], no NHS number in the reason", x)
		}
		byControl[x.ControlID] = x
	}
	if xs := exceptionsNamed(t, eng, "identity_conflict"); len(xs) != 2 || xs[0].Action != avro.ActionHeld || xs[0].ReviewID == "" {
		t.Errorf("identity_conflict exceptions %+v: want 2, held, with their review ids", xs)
	}
	approve, reject := byControl["CON-2"], byControl["CON-3"]
	if approve == nil || reject == nil {
		t.Fatalf("held %v, want CON-2 and CON-3", byControl)
	}
	ctx := context.Background()
	if _, err := review.Decide(ctx, opts, eng.Serde(), review.Decision{ID: approve.ReviewID, Approve: true, By: "alice", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := review.Decide(ctx, opts, eng.Serde(), review.Decision{ID: approve.ReviewID, Approve: true, By: "bob", At: time.Now()}); !errors.Is(err, review.ErrDecided) {
		t.Errorf("second approval: %v, want ErrDecided", err)
	}
	if _, err := review.Decide(ctx, opts, eng.Serde(), review.Decision{ID: "Rnope", Approve: true, By: "bob", At: time.Now()}); !errors.Is(err, review.ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}
	if _, err := review.Decide(ctx, opts, eng.Serde(), review.Decision{ID: reject.ReviewID, By: "alice", Reason: "wrong patient: NHS number mistyped", At: time.Now()}); err != nil {
		t.Fatal(err)
	}

	// A mistyped NHS number: not used, an exception.
	bad := n1[:9] + strconv.Itoa((int(n1[9]-'0')+1)%10)
	sendOK(ehr, adtWith("A08", "BAD-1", mr("H5")+"~"+nh(bad)))

	// A40: H6 merged into H7; then an A08 for H6 alone.
	sendOK(ehr, adtWith("A08", "MRG-1", mr("H6")))
	sendOK(ehr, adtWith("A08", "MRG-2", mr("H7")))
	keyed(map[string]string{"MRG-1": "H6^HOSP", "MRG-2": "H7^HOSP"})
	sendOK(ehr, adtWith("A40", "MRG-3", mr("H7"), "MRG|"+mr("H6")))
	keyed(map[string]string{"MRG-3": "H7^HOSP"})
	sendOK(ehr, adtWith("A08", "MRG-4", mr("H6")))

	// A chain: H8 into H9, then H9 into H10; then an A08 for H8.
	sendOK(ehr, adtWith("A08", "CH-1", mr("H8")))
	sendOK(ehr, adtWith("A08", "CH-2", mr("H9")))
	sendOK(ehr, adtWith("A08", "CH-3", mr("H10")))
	keyed(map[string]string{"CH-1": "H8^HOSP", "CH-2": "H9^HOSP", "CH-3": "H10^HOSP"})
	sendOK(ehr, adtWith("A40", "CH-4", mr("H9"), "MRG|"+mr("H8")))
	keyed(map[string]string{"CH-4": "H9^HOSP"})
	sendOK(ehr, adtWith("A40", "CH-5", mr("H10"), "MRG|"+mr("H9")))
	keyed(map[string]string{"CH-5": "H10^HOSP"})
	sendOK(ehr, adtWith("A08", "CH-6", mr("H8")))

	// A merge of a patient never seen, and an unmerge: both held.
	sendOK(ehr, adtWith("A40", "UNK-1", mr("H11"), "MRG|"+mr("H12")))
	sendOK(ehr, adtWith("A37", "UNM-1", mr("H7"), "PID|2||"+mr("H6")))

	keyed(map[string]string{"CON-2": n2 + "^NHS", "MRG-4": "H7^HOSP", "CH-6": "H10^HOSP", "BAD-1": "H5^HOSP"})
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error { return checkIdentityDeliveries(lab.messages()) })
	if xs := exceptionsNamed(t, eng, "invalid_identifier"); len(xs) != 1 || xs[0].ControlID != "BAD-1" || xs[0].Location != "PID-3[2]" {
		t.Errorf("invalid_identifier exceptions %+v: want one for BAD-1 at PID-3[2]", xs)
	}
	q, err := review.Read(ctx, opts, eng.Serde())
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, x := range q.List("") {
		codes[x.ControlID] = x.Code + " " + x.Status
	}
	for id, want := range map[string]string{
		"CON-2": "identity_conflict approved", "CON-3": "identity_conflict rejected",
		"UNK-1": "merge_unknown_patient pending", "UNM-1": "unlink pending",
	} {
		if codes[id] != want {
			t.Errorf("review of %s: %q, want %q", id, codes[id], want)
		}
	}
	if x := q.Items[reject.ReviewID]; x.DecidedBy != "alice" || x.DecisionReason != "wrong patient: NHS number mistyped" || x.DecidedAt.IsZero() {
		t.Errorf("rejection recorded as %+v", x)
	}

	// A restart: the index comes back from careflow.patients.
	if err := eng.Stop(); err != nil {
		t.Fatal(err)
	}
	eng = startEngine(t, cfg, data)
	ehr.Close()
	clinic.Close()
	sendOK(clinic, adtWith("A08", "RS-1", cli("C1")))
	sendOK(ehr, adtWith("A08", "RS-2", mr("H8")))
	keyed(map[string]string{"RS-1": n1 + "^NHS", "RS-2": "H10^HOSP"})
}

// checkIdentityDeliveries says how what the lab received differs from
// what issue 11 wants: every message once, but the held ones (CON-3,
// UNK-1, UNM-1) never and the approved CON-2 once; the A08s for retired
// MRNs under the survivor (its MRN first in PID-3, the retired one kept
// after it), after the merges that retired them.
func checkIdentityDeliveries(msgs []*hl7v2.Message) error {
	count, pos, pid3 := map[string]int{}, map[string]int{}, map[string]string{}
	for i, m := range msgs {
		name := m.Get("PID-5.2")
		count[name]++
		pos[name] = i
		var reps []string
		f, _ := m.Field("PID-3")
		for r := 1; r <= f.Reps(); r++ {
			reps = append(reps, f.Rep(r).Component(1).String())
		}
		pid3[name] = strings.Join(reps, "~")
	}
	for _, id := range []string{"ONE-1", "ONE-2", "ONE-3", "CON-1", "CON-2", "BAD-1", "MRG-1", "MRG-2", "MRG-3", "MRG-4", "CH-1", "CH-2", "CH-3", "CH-4", "CH-5", "CH-6"} {
		if count[id] != 1 {
			return fmt.Errorf("the lab got %s %d times, want once (has %v)", id, count[id], count)
		}
	}
	for _, id := range []string{"CON-3", "UNK-1", "UNM-1"} {
		if count[id] != 0 {
			return fmt.Errorf("the lab got %s, which is held for review", id)
		}
	}
	for id, want := range map[string]string{"MRG-4": "H7~H6", "CH-6": "H10~H8"} {
		if pid3[id] != want {
			return fmt.Errorf("%s reached the lab with PID-3 %s, want %s (the survivor first)", id, pid3[id], want)
		}
	}
	if pos["MRG-4"] < pos["MRG-3"] || pos["CH-6"] < pos["CH-5"] {
		return fmt.Errorf("an A08 for a retired MRN reached the lab before its merge (positions %v)", pos)
	}
	return nil
}
