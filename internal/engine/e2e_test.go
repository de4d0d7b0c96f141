package engine_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/peer"
	"github.com/careflow-health/careflow/topics"
)

// readTopic returns every committed record of topic (waiting up to wait for
// at least want).
func readTopic(t *testing.T, brokers []string, topic string, want int, wait time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(wait)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		out = append(out, cl.PollFetches(ctx).Records()...)
		cancel()
	}
	return out
}

// The whole pipeline: a real MLLP client sends ADT and orders for several
// patients; the stand-in lab (MLLP) and portal (HTTP) receive what the
// routes say, with the right content, in each patient's order.
func TestEndToEnd(t *testing.T) {
	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	portal := startPortal(t, est.Portal)
	eng := startEngine(t, est.config(t), t.TempDir())

	c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer c.Close()
	patients := []string{"P1", "P2", "P3", "P4"}
	// Per patient: admit, order, update, discharge. lab gets A01, ORM, A08;
	// portal gets A01, A08, A03.
	var sentToLab = map[string][]string{}
	n := 0
	for round, step := range []string{"A01", "ORM", "A08", "A03"} {
		for _, p := range patients {
			n++
			id := fmt.Sprintf("CTL%03d", n)
			var msg []byte
			if step == "ORM" {
				msg = orm(p, id, fmt.Sprintf("ORD-%s-%d", p, round))
			} else {
				msg = adt(step, p, id)
			}
			ack := send(t, c, msg)
			if ack.Code != "AA" || ack.ControlID != id {
				t.Fatalf("ACK for %s = %s/%s, want AA/%s", id, ack.Code, ack.ControlID, id)
			}
			if step != "A03" {
				sentToLab[p] = append(sentToLab[p], id)
			}
		}
	}
	await.For(t, 60*time.Second, 50*time.Millisecond, func() error {
		if got := len(lab.messages()); got != 12 {
			return fmt.Errorf("lab has %d of 12", got)
		}
		if got := portal.count(); got != 12 {
			return fmt.Errorf("portal has %d of 12", got)
		}
		return nil
	})
	gotOrder := map[string][]string{}
	for _, m := range lab.messages() {
		p := m.Get("PID-3[1].1")
		if m.Get("PID-3[1].4") != "HOSP" || m.Get("MSH-12") != "2.5.1" || len(m.Get("MSH-10")) == 0 || len(m.Get("MSH-10")) > 20 {
			t.Fatalf("lab message header/identity wrong: PID-3 %q authority %q version %q control id %q",
				p, m.Get("PID-3[1].4"), m.Get("MSH-12"), m.Get("MSH-10"))
		}
		switch m.Get("MSH-9.1") {
		case "ADT":
			if m.Get("PID-5.1") != "DOE" || m.Get("PID-7") != "19800101" {
				t.Fatalf("lab ADT lost demographics: name %q birth %q", m.Get("PID-5.1"), m.Get("PID-7"))
			}
		case "ORM":
			if !strings.HasPrefix(m.Get("ORC-2.1"), "ORD-"+p) || m.Get("OBR-4.1") != "CBC" {
				t.Fatalf("lab ORM lost the order: ORC-2 %q OBR-4 %q", m.Get("ORC-2"), m.Get("OBR-4"))
			}
		}
		gotOrder[p] = append(gotOrder[p], m.Get("MSH-9.1")+"^"+m.Get("MSH-9.2"))
	}
	for _, p := range patients {
		want := []string{"ADT^A01", "ORM^O01", "ADT^A08"}
		if strings.Join(gotOrder[p], ",") != strings.Join(want, ",") {
			t.Fatalf("patient %s reached the lab as %v, want %v (per-patient order)", p, gotOrder[p], want)
		}
	}
	// Every delivery is an outcome.
	outs := readTopic(t, eng.Brokers(), topics.Outcomes, 24, 10*time.Second)
	delivered := 0
	for _, r := range outs {
		var o avro.DeliveryOutcome
		if err := eng.Serde().Decode(r.Value, &o); err != nil {
			t.Fatal(err)
		}
		if o.Status == avro.StatusDelivered {
			delivered++
		}
	}
	if delivered != 24 {
		t.Fatalf("%d delivered outcomes, want 24", delivered)
	}
	if resp, err := http.Get("http://" + eng.AdminAddr() + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz while running: %v %v", resp, err)
	}
	// The admin endpoint serves metrics that count what happened.
	resp, err := http.Get("http://" + eng.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := new(strings.Builder)
	_, _ = fmt.Fprint(body, "")
	buf := make([]byte, 1<<20)
	k, _ := resp.Body.Read(buf)
	for k > 0 {
		body.Write(buf[:k])
		k, _ = resp.Body.Read(buf)
	}
	for _, want := range []string{`careflow_deliver_results_total{destination="lab",result="delivered"} 12`, "careflow_stage_records_in_total", "careflow_delivery_latency_seconds_bucket"} {
		if !strings.Contains(body.String(), want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
}

// The same messages sent twice are delivered once each; the resends are
// acknowledged and recorded as duplicates.
func TestResendDeliversOnce(t *testing.T) {
	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	eng := startEngine(t, est.config(t), t.TempDir())
	c := &mllp.Client{Addr: est.EHR}
	defer c.Close()
	for range 2 {
		for i := range 5 {
			ack := send(t, c, orm("R1", fmt.Sprintf("RSND%d", i), fmt.Sprintf("ORD%d", i)))
			if ack.Code != "AA" {
				t.Fatalf("resend answered %s", ack.Code)
			}
		}
	}
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := len(lab.messages()); n < 5 {
			return fmt.Errorf("lab has %d of 5", n)
		}
		return nil
	})
	dups := 0
	for _, r := range readTopic(t, eng.Brokers(), topics.Outcomes, 15, 10*time.Second) {
		var o avro.DeliveryOutcome
		if err := eng.Serde().Decode(r.Value, &o); err == nil && o.Status == avro.StatusDuplicate {
			dups++
		}
	}
	if got := len(lab.messages()); got != 5 || dups != 5 {
		t.Fatalf("lab got %d messages and %d duplicates were recorded, want 5 and 5", got, dups)
	}
}

// A destination that is down: the breaker opens, the backlog is held in
// Kafka, and once the destination is back everything is delivered in order.
func TestOutageHoldsBacklogAndDrainsInOrder(t *testing.T) {
	est := newEstate(t)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	eng := startEngine(t, est.config(t), t.TempDir())
	c := &mllp.Client{Addr: est.EHR}
	defer c.Close()
	const total = 30
	for i := range total {
		if ack := send(t, c, orm("OUT1", fmt.Sprintf("OUT%03d", i), fmt.Sprintf("ORD%03d", i))); ack.Code != "AA" {
			t.Fatalf("ACK %s", ack.Code)
		}
	}
	// With no lab listening the breaker opens and deliver pauses.
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get("http://" + eng.AdminAddr() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b := make([]byte, 4<<20)
		n, _ := ioReadFull(resp, b)
		if !strings.Contains(string(b[:n]), `careflow_deliver_breaker_state{destination="lab"} 2`) {
			return fmt.Errorf("breaker not open yet")
		}
		return nil
	})
	lab := startReceiver(t, est.Lab)
	await.For(t, 60*time.Second, 50*time.Millisecond, func() error {
		if n := len(lab.messages()); n < total {
			return fmt.Errorf("lab has %d of %d", n, total)
		}
		return nil
	})
	for i, m := range lab.messages() {
		if want := fmt.Sprintf("ORD%03d", i); m.Get("ORC-2.1") != want {
			t.Fatalf("message %d after recovery is order %s, want %s (backlog out of order or lost)", i, m.Get("ORC-2.1"), want)
		}
	}
	if n := len(lab.messages()); n != total {
		t.Fatalf("lab got %d, want %d: duplicates after recovery", n, total)
	}
}

// Unparseable input gets AR with an ERR segment and is dead-lettered.
func TestBadInputIsRejectedAndDeadLettered(t *testing.T) {
	est := newEstate(t)
	eng := startEngine(t, est.config(t), t.TempDir())
	c := &mllp.Client{Addr: est.EHR}
	defer c.Close()
	reply, err := c.Send(context.Background(), []byte("PID|1||123^^^HOSP^MR||DOE^JANE\r"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(reply), "MSA|AR") || !strings.Contains(string(reply), "ERR|") {
		t.Fatalf("reply to a message with no MSH = %q, want MSA|AR and an ERR segment", reply)
	}
	dl := readTopic(t, eng.Brokers(), topics.DeadLetter(topics.StageIngest), 1, 10*time.Second)
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	var d avro.DeadLetter
	if err := eng.Serde().Decode(dl[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	if d.Stage != topics.StageIngest || d.ErrorCode == "" || !strings.HasPrefix(string(d.OriginalValue), "PID|1") {
		t.Fatalf("dead letter %+v", d)
	}
	// A message of a type the interface does not accept is stored, answered
	// AR naming the rule (ack: validated, the default; HL7 answers an
	// unsupported type AR, a content error AE), and dead-lettered by
	// validate with the same reason.
	ack := send(t, c, []byte("MSH|^~\\&|EHR|HOSP|CF|HOSP|20240101||SIU^S12|S1|P|2.5\rPID|1||9^^^HOSP\r"))
	if ack.Code != "AR" || len(ack.Errors) != 1 || ack.Errors[0].Code != "200" || ack.Errors[0].Location != "MSH-9.1" {
		t.Fatalf("ACK %+v, want AR with ERR 200 at MSH-9.1", ack)
	}
	vd := readTopic(t, eng.Brokers(), topics.DeadLetter(topics.StageValidate), 1, 20*time.Second)
	if len(vd) != 1 {
		t.Fatalf("%d validate dead letters, want 1", len(vd))
	}
	if err := eng.Serde().Decode(vd[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	if d.ErrorCode != "hl7.unsupported_message_type" {
		t.Fatalf("validate dead letter code %q", d.ErrorCode)
	}
}

// Ordinary Kafka tools read every topic, and a registry client decodes it.
func TestKcatReadsTopics(t *testing.T) {
	peer.Require(t, "kcat", "kcat")
	est := newEstate(t)
	startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	eng := startEngine(t, est.config(t), t.TempDir())
	c := &mllp.Client{Addr: est.EHR}
	defer c.Close()
	send(t, c, adt("A01", "K1", "KCAT1"))
	readTopic(t, eng.Brokers(), topics.Outcomes, 3, 30*time.Second)
	// Debian's kcat has no Avro support, so it reads the raw Confluent
	// framing; a registry client (franz-go's sr, independent of careflow's
	// serde) fetches each schema by id from the admin port and decodes.
	reg, err := sr.NewClient(sr.URLs("http://" + eng.AdminAddr()))
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{topics.Raw, topics.Valid, topics.Events, topics.Outbound("lab"), topics.Outcomes} {
		out, err := exec.Command("kcat", "-C", "-b", eng.Brokers()[0], "-t", topic, "-o", "beginning", "-e", "-q",
			"-f", "%R%s").Output()
		if err != nil {
			t.Fatalf("kcat %s: %v", topic, err)
		}
		// %R prefixes each value with its 4-byte big-endian length.
		if len(out) < 9 {
			t.Fatalf("kcat read nothing from %s", topic)
		}
		n := int(binary.BigEndian.Uint32(out[:4]))
		value := out[4 : 4+n]
		var hdr sr.ConfluentHeader
		id, body, err := hdr.DecodeID(value)
		if err != nil {
			t.Fatalf("%s: value read by kcat is not Confluent-framed: %v", topic, err)
		}
		schema, err := reg.SchemaByID(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: registry on the admin port has no schema %d: %v", topic, id, err)
		}
		codec, err := goavro.NewCodec(schema.Schema)
		if err != nil {
			t.Fatal(err)
		}
		native, _, err := codec.NativeFromBinary(body)
		if err != nil {
			t.Fatalf("%s: decode with the registry's schema %d: %v", topic, id, err)
		}
		text := fmt.Sprint(native)
		if !strings.Contains(text, "KCAT1") && !strings.Contains(text, "K1") {
			t.Fatalf("%s decoded to %s, which lacks the message", topic, text)
		}
	}
}

func ioReadFull(resp *http.Response, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := resp.Body.Read(b[n:])
		n += k
		if err != nil {
			return n, nil
		}
	}
	return n, nil
}

// Debian's python3-hl7 mllp_send, an independent MLLP client, gets a
// correct ACK for every message it sends: AA with MSA-2 = its MSH-10.
func TestMLLPSendInterop(t *testing.T) {
	bin := peer.Require(t, "mllp_send", "python3-hl7")
	est := newEstate(t)
	startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	startEngine(t, est.config(t), t.TempDir())
	// Several messages in one file, LF-separated as people write them.
	var file strings.Builder
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("PYSEND%d", i)
		ids = append(ids, id)
		file.WriteString(strings.ReplaceAll(string(adt("A08", "PY1", id)), "\r", "\n"))
	}
	path := t.TempDir() + "/msgs.hl7"
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(est.EHR, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--loose", "-f", path, "-p", port, host).CombinedOutput()
	if err != nil {
		t.Fatalf("mllp_send: %v\n%s", err, out)
	}
	for _, id := range ids {
		if !strings.Contains(string(out), "MSA|AA|"+id) {
			t.Fatalf("mllp_send did not get AA for %s; output:\n%s", id, out)
		}
	}
}

// A 1 MB OBX-5 (a scanned report) goes through every stage to the
// destination intact.
func TestLargeObservationEndToEnd(t *testing.T) {
	est := newEstate(t)
	startReceiver(t, est.Lab)
	results := startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	startEngine(t, est.config(t), t.TempDir())
	big := strings.Repeat("QUJD", 1<<18) // 1 MiB of base64
	msg := []byte("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|BIG1|P|2.5\r" +
		"PID|1||BIG^^^HOSP^MR||DOE^JANE\r" +
		"OBR|1|PL1|FL1|PDF^Report^L|||20240101|||||||||||||||||F\r" +
		"OBX|1|ED|PDF^Report^L||^application^pdf^Base64^" + big + "||||||F\r")
	c := &mllp.Client{Addr: est.LabResults, ACKTimeout: 20 * time.Second}
	defer c.Close()
	if ack := send(t, c, msg); ack.Code != "AA" {
		t.Fatalf("1 MB result answered %s: %s", ack.Code, ack.Text)
	}
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		if len(results.messages()) == 0 {
			return fmt.Errorf("not delivered yet")
		}
		return nil
	})
	if got := results.messages()[0].Get("OBX-5.5"); got != big {
		t.Fatalf("OBX-5.5 arrived with %d bytes, want %d", len(got), len(big))
	}
}

// A message without a control id (MSH-10 empty) is refused with AR at
// MSH-10: its sender could not match an ACK to it, and careflow could not
// recognise its resend. It is kept as a dead letter, never delivered.
func TestEmptyControlIDIsRefused(t *testing.T) {
	est := newEstate(t)
	lab := startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	eng := startEngine(t, est.config(t), t.TempDir())
	c := &mllp.Client{Addr: est.EHR}
	defer c.Close()
	ack := send(t, c, orm("NOID", "", "NOID1"))
	if ack.Code != "AR" || len(ack.Errors) == 0 || ack.Errors[0].Code != "101" {
		t.Fatalf("ACK %+v, want AR with ERR 101", ack)
	}
	if ack := send(t, c, orm("NOID", "WITHID", "NOID2")); ack.Code != "AA" {
		t.Fatalf("a message with a control id got %s", ack.Code)
	}
	readTopic(t, eng.Brokers(), topics.DeadLetter(topics.StageIngest), 1, 15*time.Second)
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := len(lab.messages()); n != 1 {
			return fmt.Errorf("lab has %d messages, want 1", n)
		}
		return nil
	})
}
