package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/stages/lifecycle"
	"github.com/careflow-health/careflow/stages/route"
	"github.com/careflow-health/careflow/topics"
)

// returnYAML is an estate whose EHR hears back: its reply_to is a
// notifications receiver, and results wait 3s (by default) for orders.
const returnYAML = `
kafka: {partitions: 3}
admin: {listen: %[1]s}
http: {listen: %[2]s}
inbound:
  - name: ehr
    listen: %[3]s
    reply_to: ehr-notifications
    reply_timeout: 20s
    correlation_wait: %[8]s
    accept:
      message_types: ["ADT^*", "ORM^O01", "OML^O21"]
  - name: lab-results
    listen: %[4]s
    accept:
      message_types: ["ORU^R01", "ORR^O02", "ORL^O22"]
destinations:
  - name: lab
    address: %[5]s
    ack_timeout: 2s
    retry: {initial: 50ms, max: 500ms, multiplier: 2}
  - name: ehr-results
    address: %[6]s
  - name: ehr-notifications
    address: %[7]s
routes:
  - name: orders-to-lab
    destination: lab
    when: 'event.message_type in ["ORM", "OML"]'
  - name: results-to-ehr
    destination: ehr-results
    when: 'event.message_type == "ORU"'
`

type returnEstate struct {
	admin, http, ehr, labResults, lab, ehrResults, notifications string
	correlationWait                                              string // default 3s
}

func (e returnEstate) config(t *testing.T) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "careflow.yaml")
	wait := e.correlationWait
	if wait == "" {
		wait = "3s"
	}
	yaml := fmt.Sprintf(returnYAML, e.admin, e.http, e.ehr, e.labResults, e.lab, e.ehrResults, e.notifications, wait)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ormFor is an order from the EHR in HL7 2.5.1; control is ORC-1 (NW
// places it, CA cancels it), ackTypes MSH-15^MSH-16 ("" for original
// mode, "AL^ER" say).
func ormFor(p, id, placer, control, ackTypes string) []byte {
	msh15, msh16, _ := strings.Cut(ackTypes, "^")
	return []byte(strings.Join([]string{
		"MSH|^~\\&|TRAKCARE|HOSP|LAB|LAB|20240102030405||ORM^O01^ORM_O01|" + id + "|P|2.5.1|||" + msh15 + "|" + msh16,
		"PID|1||" + p + "^^^HOSP^MR||DOE^JANE||19800101|F",
		"ORC|" + control + "|" + placer + "||||||||||1234^SMITH^JOHN",
		"OBR|1|" + placer + "||CBC^Full blood count^L|||20240102030405",
	}, "\r") + "\r")
}

// orr is the lab's answer to an order: ORC-1 OK accepts, UA rejects
// (with its reason in MSA-3 and ERR).
func orr(p, id, placer, filler, control, reason string) []byte {
	msa := "MSA|AA|" + id
	if control == "UA" {
		msa = "MSA|AE|" + id + "|" + reason
	}
	return []byte(strings.Join([]string{
		"MSH|^~\\&|LAB|LAB|TRAKCARE|HOSP|20240102040000||ORR^O02^ORR_O02|" + id + "|P|2.5.1",
		msa,
		"PID|1||" + p + "^^^HOSP^MR||DOE^JANE||19800101|F",
		"ORC|" + control + "|" + placer + "|" + filler,
	}, "\r") + "\r")
}

// Issue 10's return path, end to end over MLLP, each case on a patient
// of its own: a result that overtakes its order waits for it and joins
// its journey; a result for an order never placed is delivered after the
// wait, with result_for_unknown_order; a result after a cancellation and
// a rejection by the filler (its AE, and its ORR^O02 UA) reach the EHR as
// ORR^O02 notifications naming the order, MSA-2 the EHR's order control
// id, with the lab's own words; a second final with other values is held
// as conflicting_final while a correction passes; and enhanced-mode orders
// get the application acknowledgement MSH-16 asks for, MSA-2 their
// control id: AL always (AA, or AE carrying the lab's ERR text), ER only
// on error.
func TestReturnPathEndToEnd(t *testing.T) {
	p := func() string { return freeport.For(t) }
	est := returnEstate{admin: p(), http: p(), ehr: p(), labResults: p(), lab: p(), ehrResults: p(), notifications: p()}
	lab := startFaultLab(t, est.lab, func(_ int, m *hl7v2.Message) labAnswer {
		if strings.HasPrefix(m.Get("ORC-2.1"), "REJ") && m.Get("ORC-1") == "NW" {
			return labAnswer{Code: hl7v2.AckAE, Errors: []hl7v2.AckError{{Code: "103", Location: "OBR-4", Text: "unknown test code CBC"}}}
		}
		return labAnswer{}
	})
	results := startReceiver(t, est.ehrResults)
	notes := startReceiver(t, est.notifications)
	eng := startEngine(t, est.config(t), t.TempDir())
	ehr := &mllp.Client{Addr: est.ehr, ACKTimeout: 10 * time.Second}
	defer ehr.Close()
	labOut := &mllp.Client{Addr: est.labResults, ACKTimeout: 10 * time.Second}
	defer labOut.Close()
	sendOK := func(c *mllp.Client, m []byte, want hl7v2.AckCode) {
		t.Helper()
		if ack := send(t, c, m); ack.Code != want {
			t.Fatalf("ACK %s (%s), want %s", ack.Code, ack.Text, want)
		}
	}
	accepted := func(placer string) {
		t.Helper()
		await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
			for _, x := range transitions(t, eng) {
				if x.PlacerOrder == placer && x.State == lifecycle.Accepted {
					return nil
				}
			}
			return fmt.Errorf("order %s not accepted yet", placer)
		})
	}

	// A result before its order: held, then released by the order.
	sendOK(labOut, oru("RB", "RB-RES-1", "RB1^TRAKCARE", "F-RB1^LAB", "F", "141"), hl7v2.AckAA)
	time.Sleep(500 * time.Millisecond) // the result is in route's wait, not yet at the EHR
	if slices.ContainsFunc(results.messages(), func(m *hl7v2.Message) bool { return m.Get("OBR-2.1") == "RB1" }) {
		t.Fatal("the result reached the EHR before its order was placed")
	}
	sendOK(ehr, ormFor("RB", "RB-ORD-1", "RB1^TRAKCARE", "NW", ""), hl7v2.AckAA)

	// A result for an order never placed: delivered after the 3s wait.
	sendOK(labOut, oru("RU", "RU-RES-1", "RU1^TRAKCARE", "", "F", "9"), hl7v2.AckAA)

	// Cancelled after acceptance, then a late result.
	sendOK(ehr, ormFor("RC", "RC-ORD-1", "RC1^TRAKCARE", "NW", ""), hl7v2.AckAA)
	accepted("RC1^TRAKCARE")
	sendOK(ehr, ormFor("RC", "RC-ORD-2", "RC1^TRAKCARE", "CA", ""), hl7v2.AckAA)
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, x := range transitions(t, eng) {
			if x.PlacerOrder == "RC1^TRAKCARE" && x.State == lifecycle.Cancelled {
				return nil
			}
		}
		return fmt.Errorf("RC1 not cancelled yet")
	})
	sendOK(labOut, oru("RC", "RC-RES-1", "RC1^TRAKCARE", "F-RC1^LAB", "F", "5"), hl7v2.AckAA)

	// Rejected by the filler: its AE on delivery, and its ORR^O02 UA.
	sendOK(ehr, ormFor("RR", "RR-ORD-1", "REJ1^TRAKCARE", "NW", ""), hl7v2.AckAA)
	sendOK(ehr, ormFor("RS", "RS-ORD-1", "RS1^TRAKCARE", "NW", ""), hl7v2.AckAA)
	accepted("RS1^TRAKCARE")
	sendOK(labOut, orr("RS", "RS-ORR-1", "RS1^TRAKCARE", "F-RS1^LAB", "UA", "specimen haemolysed"), hl7v2.AckAA)

	// A second final with other values, then a correction.
	sendOK(ehr, ormFor("RF", "RF-ORD-1", "RF1^TRAKCARE", "NW", ""), hl7v2.AckAA)
	accepted("RF1^TRAKCARE")
	sendOK(labOut, oru("RF", "RF-RES-1", "RF1^TRAKCARE", "F-RF1^LAB", "F", "100"), hl7v2.AckAA)
	sendOK(labOut, oru("RF", "RF-RES-2", "RF1^TRAKCARE", "F-RF1^LAB", "F", "200"), hl7v2.AckAA)
	sendOK(labOut, oru("RF", "RF-RES-3", "RF1^TRAKCARE", "F-RF1^LAB", "C", "150"), hl7v2.AckAA)

	// One order number for two patients: tracked apart, an exception for
	// the second.
	sendOK(ehr, ormFor("DA", "DA-ORD-1", "DUP1^TRAKCARE", "NW", ""), hl7v2.AckAA)
	accepted("DUP1^TRAKCARE")
	sendOK(ehr, ormFor("DB", "DB-ORD-1", "DUP1^TRAKCARE", "NW", ""), hl7v2.AckAA)

	// Enhanced mode: the commit ACK at once, the application ACK later.
	sendOK(ehr, ormFor("EA", "EA-ORD-1", "EA1^TRAKCARE", "NW", "AL^AL"), hl7v2.AckCA)
	sendOK(ehr, ormFor("EB", "EB-ORD-1", "REJ2^TRAKCARE", "NW", "AL^AL"), hl7v2.AckCA)
	sendOK(ehr, ormFor("EC", "EC-ORD-1", "EC1^TRAKCARE", "NW", "AL^ER"), hl7v2.AckCA)
	sendOK(ehr, ormFor("ED", "ED-ORD-1", "REJ3^TRAKCARE", "NW", "AL^ER"), hl7v2.AckCA)

	// What the EHR's results interface got: RB1 (joined), RU1 (after the
	// wait), RC1 (delivered, with its exception), RF1's first final and
	// the correction, not the conflicting final.
	describeResult := func(m *hl7v2.Message) string { return m.Get("OBR-2.1") + "/" + m.Get("OBX-5") }
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		return sameSet(results.messages(), describeResult, "RB1/141", "RU1/9", "RC1/5", "RF1/100", "RF1/150")
	})
	// What the EHR heard back on ehr-notifications.
	describeNote := func(m *hl7v2.Message) string {
		return strings.Join([]string{m.Get("MSH-9.1"), m.Get("MSA-1"), m.Get("MSA-2"), m.Get("ORC-1"), m.Get("ORC-2.1"), m.Get("ERR-5.1")}, "/")
	}
	await.For(t, 40*time.Second, 50*time.Millisecond, func() error {
		return sameSet(notes.messages(), describeNote,
			"ORR/AE/RC-ORD-1/DE/RC1/result_after_cancel",
			"ORR/AE/RR-ORD-1/UA/REJ1/order_rejected",
			"ORR/AE/RS-ORD-1/UA/RS1/order_rejected",
			"ORR/AE/RF-ORD-1/DE/RF1/conflicting_final",
			"ORR/AE/EB-ORD-1/UA/REJ2/order_rejected",
			"ORR/AE/ED-ORD-1/UA/REJ3/order_rejected",
			"ACK/AA/EA-ORD-1///", "ACK/AE/EB-ORD-1///ack.AE", "ACK/AE/ED-ORD-1///ack.AE")
	})
	// The lab's own words come back: ERR-8 of the application ACK and of
	// the notifications.
	for _, m := range notes.messages() {
		switch m.Get("MSA-2") {
		case "RR-ORD-1", "EB-ORD-1":
			if !strings.Contains(m.Get("ERR-8"), "unknown test code CBC") {
				t.Errorf("%s^%s for %s: ERR-8 %q does not carry the lab's text", m.Get("MSH-9.1"), m.Get("MSH-9.2"), m.Get("MSA-2"), m.Get("ERR-8"))
			}
		case "RS-ORD-1":
			if !strings.Contains(m.Get("ERR-8"), "specimen haemolysed") {
				t.Errorf("notification for RS1: ERR-8 %q does not carry the lab's reason", m.Get("ERR-8"))
			}
		}
	}

	// The result that waited joined its order's journey and raised no
	// exception; the rest raised theirs.
	codes := map[string][]string{}
	for _, r := range readTopic(t, eng.Brokers(), topics.Exceptions, 8, 10*time.Second) {
		var x avro.Exception
		if err := eng.Serde().Decode(r.Value, &x); err != nil {
			t.Fatal(err)
		}
		codes[x.PlacerOrder] = append(codes[x.PlacerOrder], x.Code+"@"+x.PatientKey)
	}
	for placer, cs := range codes {
		for i, c := range cs {
			code, patient, _ := strings.Cut(c, "@")
			if code == "order_number_reused" && patient != "DB^HOSP" {
				t.Errorf("order_number_reused raised for %s, want the second patient DB^HOSP", patient)
			}
			codes[placer][i] = code
		}
	}
	want := map[string]string{"RU1^TRAKCARE": "result_for_unknown_order", "RC1^TRAKCARE": "result_after_cancel",
		"REJ1^TRAKCARE": "order_rejected", "RS1^TRAKCARE": "order_rejected", "RF1^TRAKCARE": "conflicting_final",
		"REJ2^TRAKCARE": "order_rejected", "REJ3^TRAKCARE": "order_rejected", "DUP1^TRAKCARE": "order_number_reused"}
	for placer, code := range want {
		if got := strings.Join(codes[placer], ","); got != code {
			t.Errorf("exceptions for %s: %q, want %q", placer, got, code)
		}
	}
	if len(codes["RB1^TRAKCARE"]) > 0 || len(codes["RB1"]) > 0 {
		t.Errorf("the result that overtook RB1 raised %v", codes["RB1^TRAKCARE"])
	}
	var rbOrder string
	for _, x := range transitions(t, eng) {
		if x.PlacerOrder == "RB1^TRAKCARE" && x.State == lifecycle.Placed {
			rbOrder = x.CorrelationID
		}
	}
	for _, r := range readTopic(t, eng.Brokers(), topics.Outbound("ehr-results"), 5, 10*time.Second) {
		var ev avro.ClinicalEvent
		if err := eng.Serde().Decode(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Orders[0].PlacerOrderNumber == "RB1" && ev.CorrelationID != rbOrder {
			t.Errorf("RB1's result has correlation id %s, want its order's %s", ev.CorrelationID, rbOrder)
		}
	}
	_ = lab
}

// transitions reads every order transition recorded so far.
func transitions(t *testing.T, eng interface {
	Brokers() []string
	Serde() *avro.Serde
}) []avro.OrderTransition {
	t.Helper()
	var out []avro.OrderTransition
	for _, r := range readTopic(t, eng.Brokers(), topics.Orders, 1<<20, 300*time.Millisecond) {
		var x avro.OrderTransition
		if err := eng.Serde().Decode(r.Value, &x); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

// sameSet says how msgs, as describe puts them, differ from want, order
// aside; nil when they are the same.
func sameSet(msgs []*hl7v2.Message, describe func(*hl7v2.Message) string, want ...string) error {
	var got []string
	for _, m := range msgs {
		got = append(got, describe(m))
	}
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		return fmt.Errorf("got %q, want %q", got, w)
	}
	return nil
}

// What waits in route's state survives a restart: a result that overtook
// its order is released by the order sent after the restart, joined to it;
// another, whose order never comes, is delivered with
// result_for_unknown_order once its wait ends, by a timer restored from
// the changelog; and an enhanced-mode order's application ACK, pending
// when careflow stopped, is sent once the lab answers after the restart.
func TestWaitsSurviveARestart(t *testing.T) {
	p := func() string { return freeport.For(t) }
	// The wait outlasts the restart, so WA1's order, sent after it, is in
	// time.
	est := returnEstate{admin: p(), http: p(), ehr: p(), labResults: p(), lab: p(), ehrResults: p(), notifications: p(),
		correlationWait: "12s"}
	lab := newFaultLab(t, est.lab, nil) // down until the restart
	results := startReceiver(t, est.ehrResults)
	notes := startReceiver(t, est.notifications)
	cfg := est.config(t)
	dataDir := t.TempDir()
	eng := startEngine(t, cfg, dataDir)
	labOut := &mllp.Client{Addr: est.labResults, ACKTimeout: 10 * time.Second}
	ehr := &mllp.Client{Addr: est.ehr, ACKTimeout: 10 * time.Second}
	if ack := send(t, labOut, oru("WA", "WA-RES-1", "WA1^TRAKCARE", "F-WA1^LAB", "F", "7")); ack.Code != hl7v2.AckAA {
		t.Fatalf("result ACK %s", ack.Code)
	}
	if ack := send(t, labOut, oru("WB", "WB-RES-1", "WB1^TRAKCARE", "F-WB1^LAB", "F", "8")); ack.Code != hl7v2.AckAA {
		t.Fatalf("result ACK %s", ack.Code)
	}
	if ack := send(t, ehr, ormFor("WC", "WC-ORD-1", "WC1^TRAKCARE", "NW", "AL^AL")); ack.Code != hl7v2.AckCA {
		t.Fatalf("order ACK %s", ack.Code)
	}
	// Both results are held, the order is routed: state to keep.
	await.For(t, 20*time.Second, 50*time.Millisecond, func() error {
		held := 0
		for _, r := range readTopic(t, eng.Brokers(), topics.Outcomes, 1<<20, 300*time.Millisecond) {
			var o avro.DeliveryOutcome
			if err := eng.Serde().Decode(r.Value, &o); err != nil {
				t.Fatal(err)
			}
			if o.Status == avro.StatusHeld && o.ErrorCode == route.CodeAwaiting {
				held++
			}
		}
		if held < 2 {
			return fmt.Errorf("%d results held for their orders, want 2", held)
		}
		return nil
	})
	labOut.Close()
	ehr.Close()
	if err := eng.Stop(); err != nil {
		t.Fatal(err)
	}

	lab.start(t)
	eng = startEngine(t, cfg, dataDir)
	ehr = &mllp.Client{Addr: est.ehr, ACKTimeout: 10 * time.Second}
	defer ehr.Close()
	if ack := send(t, ehr, ormFor("WA", "WA-ORD-1", "WA1^TRAKCARE", "NW", "")); ack.Code != hl7v2.AckAA {
		t.Fatalf("order ACK %s", ack.Code)
	}
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		return sameSet(results.messages(), func(m *hl7v2.Message) string { return m.Get("OBR-2.1") }, "WA1", "WB1")
	})
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		return sameSet(notes.messages(), func(m *hl7v2.Message) string { return m.Get("MSH-9.1") + "/" + m.Get("MSA-1") + "/" + m.Get("MSA-2") }, "ACK/AA/WC-ORD-1")
	})
	codes := map[string]string{}
	for _, r := range readTopic(t, eng.Brokers(), topics.Exceptions, 1, 10*time.Second) {
		var x avro.Exception
		if err := eng.Serde().Decode(r.Value, &x); err != nil {
			t.Fatal(err)
		}
		codes[x.PlacerOrder] += x.Code
	}
	if codes["WB1^TRAKCARE"] != "result_for_unknown_order" || codes["WA1^TRAKCARE"] != "" {
		t.Errorf("exceptions %v, want result_for_unknown_order for WB1 only", codes)
	}
}

// Issue 11's identifier policy, first part: with the NHS number trusted
// first, one person known by two hospital numbers is keyed alike (so their
// messages share a partition and stay in order), and a mistyped NHS number
// is not used: the message is keyed by its hospital number.
func TestIdentifierPolicyKeys(t *testing.T) {
	est := newEstate(t)
	startReceiver(t, est.Lab)
	startPortal(t, est.Portal)
	cfg := est.config(t)
	cfg.Identity.Trust = []config.TrustedIdentifier{{Type: "NH", Authority: "NHS", Check: "nhs"}, {Type: "MR"}}
	eng := startEngine(t, cfg, t.TempDir())
	ehr := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer ehr.Close()
	msg := func(id, pid3 string) []byte {
		return []byte("MSH|^~\\&|EHR|HOSP|CAREFLOW|HOSP|20240102030405||ADT^A08^ADT_A01|" + id + "|P|2.5.1\r" +
			"EVN|A08|20240102030405\rPID|1||" + pid3 + "||DOE^JANE||19800101|F\rPV1|1|I|WARD1\r")
	}
	for _, m := range [][]byte{
		msg("IP-1", "M1^^^HOSP^MR~9434765919^^^NHS^NH"),
		msg("IP-2", "X7^^^OTHER^MR~9434765919^^^NHS^NH"),
		msg("IP-3", "M2^^^HOSP^MR~9434765918^^^NHS^NH"), // the last digit mistyped
	} {
		if ack := send(t, ehr, m); ack.Code != hl7v2.AckAA {
			t.Fatalf("ACK %s (%s)", ack.Code, ack.Text)
		}
	}
	keys := map[string]string{}
	for _, r := range readTopic(t, eng.Brokers(), topics.Raw, 3, 20*time.Second) {
		var raw avro.RawMessage
		if err := eng.Serde().Decode(r.Value, &raw); err != nil {
			t.Fatal(err)
		}
		keys[raw.ControlID] = string(r.Key)
	}
	want := map[string]string{"IP-1": "9434765919^NHS", "IP-2": "9434765919^NHS", "IP-3": "M2^HOSP"}
	for id, k := range want {
		if keys[id] != k {
			t.Errorf("%s keyed %q, want %q", id, keys[id], k)
		}
	}
	// The mistyped number is an exception, which names where it is and
	// never the number.
	xs := readTopic(t, eng.Brokers(), topics.Exceptions, 1, 20*time.Second)
	if len(xs) != 1 {
		t.Fatalf("%d exceptions, want invalid_identifier once", len(xs))
	}
	var x avro.Exception
	if err := eng.Serde().Decode(xs[0].Value, &x); err != nil {
		t.Fatal(err)
	}
	if x.Code != "invalid_identifier" || x.ControlID != "IP-3" || x.PatientKey != "M2^HOSP" ||
		!strings.Contains(x.Reason, "PID-3[2]") || strings.Contains(x.Reason, "9434765918") {
		t.Errorf("exception %+v", x)
	}
}
