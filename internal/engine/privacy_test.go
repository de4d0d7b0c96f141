package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/logbuf"
	"github.com/careflow-health/careflow/topics"
)

// Planted patient data: in the messages careflow is sent, and in every kind
// of reply its destinations give back (AE, AR and AA texts, ERR segments,
// HTTP 4xx and 5xx bodies that echo the request, as portals do).
const (
	plantedFamily = "ZQXFAMILY"
	plantedGiven  = "ZQXGIVEN"
	plantedMRN    = "ZQX424242"
	plantedStreet = "ZQX STREET"
)

var planted = []string{plantedFamily, plantedGiven, plantedMRN, plantedStreet}

func plantedADT(trigger, id string) []byte {
	return []byte(strings.Join([]string{
		"MSH|^~\\&|EHR|HOSP|CAREFLOW|HOSP|20240102030405||ADT^" + trigger + "^ADT_A01|" + id + "|P|2.5.1",
		"EVN|" + trigger + "|20240102030405",
		"PID|1||" + plantedMRN + "^^^HOSP^MR||" + plantedFamily + "^" + plantedGiven + "||19800101|F|||" + plantedStreet + "^^LEEDS",
		"PV1|1|I|WARD1^101^A^HOSP",
	}, "\r") + "\r")
}

// chattyLab answers each message in turn: AE naming the patient, AR naming
// the patient, then AA with the patient in MSA-3.
func chattyLab(t *testing.T, addr string) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	text := "patient " + plantedFamily + " " + plantedGiven + " MRN " + plantedMRN
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		m, err := hl7v2.Parse(append([]byte(nil), req.Payload...))
		if err != nil {
			return nil
		}
		code := [...]hl7v2.AckCode{hl7v2.AckAE, hl7v2.AckAR, hl7v2.AckAA}[min(int(n.Add(1))-1, 2)]
		return hl7v2.BuildACK(m.Header(), m.Delimiters(), code, hl7v2.ACKOptions{
			ControlID: "L" + m.Get("MSH-10"), Now: time.Now(), Text: text,
			Errors: []hl7v2.AckError{{Code: "207", Location: "PID-5", Text: text}},
		})
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return &n
}

// echoingPortal answers 422, then 503, then 200, each body echoing the
// request (the whole JSON event).
func echoingPortal(t *testing.T, addr string) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		status := [...]int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable, http.StatusOK}[min(int(n.Add(1))-1, 2)]
		w.WriteHeader(status)
		fmt.Fprintf(w, "cannot take %s: %s", plantedFamily, body)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &n
}

// TestNoPatientDataInLogsMetricsHeadersOrOutcomes runs the whole engine at
// debug level through rejections, retries and deliveries whose replies name
// the patient, then looks for the planted data everywhere careflow writes
// something a person or a dashboard reads: every log line at every level,
// /metrics, every header of every record on every topic, every outcome and
// audit record. The data may only be in what holds messages by design:
// record values of raw, valid, events and outbound topics, and dead
// letters' values (access-controlled), where ErrorDetail keeps the
// destination's text.
func TestNoPatientDataInLogsMetricsHeadersOrOutcomes(t *testing.T) {
	est := newEstate(t)
	lab := chattyLab(t, est.Lab)
	startReceiver(t, est.EHRResults)
	portal := echoingPortal(t, est.Portal)
	logs := &logbuf.Buffer{}
	eng := startEngineWith(t, engine.Options{
		Config: est.config(t),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})

	c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer c.Close()
	// Two admissions: the first is rejected by both (AE, 422); the second
	// is refused for now (AR, 503), retried, then delivered.
	for i := range 2 {
		if ack := send(t, c, plantedADT("A01", fmt.Sprintf("PRIV%d", i))); ack.Code != "AA" {
			t.Fatalf("ACK %s", ack.Code)
		}
	}
	// A message the interface does not accept (AR; validate dead-letters it)
	// and one with a byte its character set does not define (ingest
	// refuses it at its field).
	oru := strings.Replace(string(plantedADT("A01", "PRIVORU")), "ADT^A01^ADT_A01", "ORU^R01", 1)
	if ack := send(t, c, []byte(oru)); ack.Code != "AR" {
		t.Fatalf("ORU to ehr: ACK %s, want AR (stored, a type the interface does not take)", ack.Code)
	} else if strings.Contains(fmt.Sprint(ack), plantedFamily) || strings.Contains(fmt.Sprint(ack), plantedMRN) {
		t.Fatalf("the AE quotes the patient: %+v", ack)
	}
	badByte := strings.Replace(string(plantedADT("A01", "PRIVBYTE")), plantedGiven, plantedGiven+"\xe9", 1)
	if ack := send(t, c, []byte(badByte)); ack.Code != "AR" || len(ack.Errors) == 0 || ack.Errors[0].Location != "PID-5" {
		t.Fatalf("invalid UTF-8 in PID-5: ACK %+v, want AR at PID-5", ack)
	}
	// And input careflow itself refuses, whose ERR text must not quote it.
	if ack := send(t, c, []byte("PID|1||"+plantedMRN+"||"+plantedFamily+"\r")); ack.Code != "AR" {
		t.Fatalf("unparseable input: ACK %s", ack.Code)
	} else if strings.Contains(fmt.Sprint(ack), plantedFamily) {
		t.Errorf("the AR quotes the input: %+v", ack)
	}
	await.For(t, 60*time.Second, 50*time.Millisecond, func() error {
		if l, p := lab.Load(), portal.Load(); l < 3 || p < 3 {
			return fmt.Errorf("lab answered %d, portal %d; want 3 each", l, p)
		}
		return nil
	})
	// Two dead letters at deliver (AE and 422), then the final outcomes.
	dlq := readTopic(t, eng.Brokers(), topics.DeadLetter(topics.StageDeliver), 2, 30*time.Second)
	details := 0
	for _, r := range dlq {
		var dl avro.DeadLetter
		if err := eng.Serde().Decode(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(dl.ErrorDetail, plantedFamily) {
			details++
		}
		for _, p := range planted {
			if strings.Contains(dl.ErrorText, p) || strings.Contains(dl.ErrorCode, p) || strings.Contains(dl.ErrorLocation, p) {
				t.Errorf("dead letter's error text carries %q: %+v", p, dl.ErrorText)
			}
		}
	}
	if details != 2 {
		t.Errorf("%d of 2 dead letters keep the destination's text in error_detail", details)
	}
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		delivered := 0
		for _, r := range readAll(t, eng.Brokers(), topics.Outcomes) {
			var o avro.DeliveryOutcome
			if err := eng.Serde().Decode(r.Value, &o); err != nil {
				return err
			}
			if o.Status == avro.StatusDelivered {
				delivered++
			}
		}
		if delivered < 2 {
			return fmt.Errorf("%d deliveries recorded, want 2 (lab and portal)", delivered)
		}
		return nil
	})

	var leaks []string
	look := func(where, text string) {
		for _, p := range planted {
			if strings.Contains(text, p) {
				leaks = append(leaks, fmt.Sprintf("%s carries %q: %.200s", where, p, text))
			}
		}
	}
	for _, line := range logs.Lines() {
		look("log line", line)
	}
	resp, err := http.Get("http://" + eng.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	look("/metrics", string(metrics))
	all := []string{topics.Raw, topics.Valid, topics.Events, topics.Outcomes, topics.Audit,
		topics.Outbound("lab"), topics.Outbound("portal"), topics.Outbound("ehr-results")}
	for _, s := range topics.Stages {
		all = append(all, topics.DeadLetter(s))
	}
	for _, topic := range all {
		for _, r := range readAll(t, eng.Brokers(), topic) {
			for _, h := range r.Headers {
				look(topic+" header "+h.Key, string(h.Value))
			}
			switch topic {
			case topics.Outcomes:
				var o avro.DeliveryOutcome
				if err := eng.Serde().Decode(r.Value, &o); err != nil {
					t.Fatal(err)
				}
				look("outcome", fmt.Sprintf("%+v", o))
			case topics.Audit:
				var a avro.AuditEvent
				if err := eng.Serde().Decode(r.Value, &a); err != nil {
					t.Fatal(err)
				}
				look("audit record", fmt.Sprintf("%+v", a))
			}
		}
	}
	for _, l := range leaks {
		t.Error(l)
	}
	if len(logs.Lines()) < 10 {
		t.Fatalf("only %d log lines at debug: the logger given was not the one used", len(logs.Lines()))
	}
}

// readAll reads every committed record of topic now.
func readAll(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); n++ })
		if n == 0 {
			return out
		}
	}
}
