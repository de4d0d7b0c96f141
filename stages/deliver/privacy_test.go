package deliver_test

// What a destination says in its own words (an ACK's MSA-3 and ERR text,
// an HTTP body) often names the patient. It must reach only the dead
// letter's ErrorDetail: never a log line at any level, an outcome, a
// header or a metric label. These tests run the deliver stage under the
// real runner against the in-process broker and look everywhere.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/logbuf"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/deliver"
	"github.com/careflow-health/careflow/stages/deliver/render"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// What receivers say about the patient, planted in every reply.
const (
	plantedName = "SMITH^JOHN"
	plantedID   = "NHS9434765919"
)

var planted = []string{plantedName, plantedID, "SMITH", "9434765919"}

// longText is receiver text naming the patient and running past
// avro.MaxErrorDetail in two-byte characters, so that the cut must fall on
// a character boundary.
func longText(what string) string {
	return "Patient " + plantedName + " (" + plantedID + ") " + what + " " + strings.Repeat("é", avro.MaxErrorDetail)
}

// captureLogs returns a debug-level logger writing to a buffer, and makes
// it the default for the test too, so that nothing logs around it.
func captureLogs(t *testing.T) (*slog.Logger, *logbuf.Buffer) {
	t.Helper()
	buf := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(log)
	t.Cleanup(func() { slog.SetDefault(prev) })
	return log, buf
}

// plantingLab answers each message as its scenario says, every answer
// naming the patient: "AE", "CE" (junk in ERR-2 too), "AR" then AA, "CR"
// then AA.
func plantingLab(t *testing.T, scenario map[string]string) string {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := &mllp.Server{Logger: slog.New(slog.DiscardHandler), Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		m, err := hl7v2.Parse(req.Payload)
		if err != nil {
			return nil
		}
		ctrl := m.Get("MSH-10")
		mu.Lock()
		seen[ctrl]++
		n := seen[ctrl]
		mu.Unlock()
		code, msa3, erl, errText := "AA", "", "", ""
		switch s := scenario[ctrl]; {
		case s == "AE":
			code, msa3, erl, errText = "AE", longText("unknown here"), "PID^1^5", "Name "+plantedName+" does not match "+plantedID
		case s == "CE":
			code, erl, errText = "CE", plantedName+"^"+plantedID, longText("rejected")
		case (s == "AR" || s == "CR") && n == 1:
			code, msa3, errText = s, "Busy with "+plantedName, "Retry "+plantedID+" later"
		}
		ack := fmt.Sprintf("MSH|^~\\&|LAB|HOSP|CAREFLOW|HOSP|20240101120000||ACK^A01^ACK|A%s%d|P|2.5.1\rMSA|%s|%s|%s\r", ctrl, n, code, ctrl, msa3)
		if errText != "" {
			ack += fmt.Sprintf("ERR||%s|103^Table value not found^HL70357|E||||%s\r", erl, errText)
		}
		return []byte(ack)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// plantingPortal answers 422 with the whole event echoed and the patient
// named (for "p422"), and 503 naming the patient then 200 (for "p503").
func plantingPortal(t *testing.T) string {
	t.Helper()
	var mu sync.Mutex
	tries := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		switch {
		case bytes.Contains(body.Bytes(), []byte("p422")):
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprintf(w, `{"error":%q,"event":%s}`, longText("is not registered"), body.Bytes())
		case bytes.Contains(body.Bytes(), []byte("p503")):
			mu.Lock()
			tries++
			first := tries == 1
			mu.Unlock()
			if first {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "upstream timed out looking up %s %s", plantedName, plantedID)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDeliverKeepsDestinationTextOutOfLogsHeadersAndOutcomes(t *testing.T) {
	log, logs := captureLogs(t)
	serde := newSerde(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1,
		topics.Outbound("lab"), topics.Outbound("portal"), topics.Outcomes, topics.DeadLetter(topics.StageDeliver)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	kafka := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}

	labEvents := map[string]string{"e-ae": "AE", "e-ce": "CE", "e-ar": "AR", "e-cr": "CR"}
	scenario := map[string]string{}
	for id, s := range labEvents {
		scenario[identity.ControlID(event(id).EventID, "lab")] = s
	}
	dests := []deliver.Destination{
		{Name: "lab", Connector: deliver.MLLP{Client: &mllp.Client{Addr: plantingLab(t, scenario), ACKTimeout: 5 * time.Second}},
			Target: render.Target{Format: "hl7v2", Version: "2.5.1", SendingApplication: "CAREFLOW", ReceivingApplication: "LAB"}},
		{Name: "portal", Target: render.Target{Format: "json"},
			Connector: deliver.HTTP{Client: &httpx.Client{Timeout: 5 * time.Second}, URL: plantingPortal(t), ContentType: "application/json"}},
	}
	events := map[string][]string{"lab": {"e-ae", "e-ce", "e-ar", "e-cr"}, "portal": {"p422", "p503"}}

	reg := prometheus.NewRegistry()
	stageMetrics, deliverMetrics := stages.NewMetrics(reg), deliver.NewMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, d := range dests {
		st, err := deliver.New(deliver.Config{Destination: d, Serde: serde, Logger: log, Metrics: deliverMetrics})
		if err != nil {
			t.Fatal(err)
		}
		r, err := stages.NewRunner(stages.RunnerConfig{
			Stage: topics.StageDeliver, Group: "careflow-deliver-" + d.Name, Inputs: []string{topics.Outbound(d.Name)},
			Processor: st, Serde: serde, Kafka: kafka, Logger: log, Metrics: stageMetrics,
			RetryInitial: 10 * time.Millisecond, HoldLimit: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = r.Run(ctx) })
	}

	cl, err := kgo.NewClient(kafka...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for dest, ids := range events {
		for _, id := range ids {
			env := envelope(t, serde, event(id))
			env.Headers.Set(topics.HeaderInterface, "ehr")
			rec := stages.ToRecord(env)
			rec.Topic = topics.Outbound(dest)
			if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	// lab: AE and CE rejected, AR and CR retried then delivered; portal:
	// 422 rejected, 503 retried then delivered.
	outcomes := consumeCommitted(t, kafka, topics.Outcomes, 9)
	dlq := consumeCommitted(t, kafka, topics.DeadLetter(topics.StageDeliver), 3)

	for _, rec := range append(append([]*kgo.Record{}, outcomes...), dlq...) {
		for _, h := range rec.Headers {
			assertClean(t, fmt.Sprintf("%s header %s", rec.Topic, h.Key), string(h.Value))
		}
	}
	texts := map[string]string{}
	for _, rec := range outcomes {
		assertClean(t, "outcome value", string(rec.Value))
		var o avro.DeliveryOutcome
		if err := serde.Decode(rec.Value, &o); err != nil {
			t.Fatal(err)
		}
		if o.Status == avro.StatusRejected {
			texts[o.MessageID] = o.ErrorCode + " " + o.ErrorLocation + " " + o.ErrorText
		}
	}
	wantTexts := map[string]string{
		"e-ae": "ack.AE PID-5 destination lab answered AE",
		"e-ce": "ack.CE  destination lab answered CE", // ERR-2 held no location, only text
		"p422": "http.422  destination portal answered HTTP 422",
	}
	if fmt.Sprint(texts) != fmt.Sprint(wantTexts) {
		t.Fatalf("rejected outcomes (code location text) %v, want %v", texts, wantTexts)
	}
	for _, rec := range dlq {
		var dl avro.DeadLetter
		if err := serde.Decode(rec.Value, &dl); err != nil {
			t.Fatal(err)
		}
		for field, v := range map[string]string{"error_code": dl.ErrorCode, "error_location": dl.ErrorLocation, "error_text": dl.ErrorText} {
			assertClean(t, "dead letter "+field, v)
		}
		d := dl.ErrorDetail
		if !strings.Contains(d, plantedID) || !strings.Contains(d, plantedName) || !utf8.ValidString(d) || len(d) > avro.MaxErrorDetail || len(d) <= avro.MaxErrorDetail-utf8.UTFMax {
			t.Errorf("dead letter of %s: error_detail of %d bytes (valid UTF-8 %v), want the destination's text naming %s cut to %d bytes:\n%.200s",
				dl.MessageID, len(d), utf8.ValidString(d), plantedID, avro.MaxErrorDetail, d)
		}
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				assertClean(t, "metric "+mf.GetName()+" label "+lp.GetName(), lp.GetValue())
			}
		}
	}
	cancel()
	wg.Wait()
	assertClean(t, "log output", logs.String())
	if !strings.Contains(logs.String(), "record still failing") && !strings.Contains(logs.String(), "record dead-lettered") {
		t.Fatalf("log capture saw none of the runner's lines; is it wired?\n%s", logs.String())
	}
}

// assertClean fails the test if s holds any planted patient datum.
func assertClean(t *testing.T, where, s string) {
	t.Helper()
	for _, p := range planted {
		if strings.Contains(s, p) {
			i := strings.Index(s, p)
			t.Errorf("%s holds destination text naming the patient (%q): …%s…", where, p, s[max(0, i-80):min(len(s), i+80)])
		}
	}
}

// consumeCommitted reads want committed records of topic, failing the test
// if they do not arrive in time.
func consumeCommitted(t *testing.T, kafka []kgo.Opt, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, kafka...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		out = append(out, cl.PollFetches(ctx).Records()...)
		cancel()
	}
	if len(out) != want {
		t.Fatalf("%s: %d records, want %d", topic, len(out), want)
	}
	return out
}

// Each kind of answer that names the patient leaves careflow's error text
// and the outcome clean, and carries the destination's words only as the
// error's Detail.
func TestDeliverErrorsCarryDestinationTextOnlyAsDetail(t *testing.T) {
	serde := newSerde(t)
	ids := []string{"d-ae", "d-ce", "d-ar", "d-cr"}
	scenario := map[string]string{}
	for _, id := range ids {
		scenario[identity.ControlID(event(id).EventID, "lab")] = strings.ToUpper(id[2:])
	}
	lab := newStage(t, serde, deliver.MLLP{Client: &mllp.Client{Addr: plantingLab(t, scenario), ACKTimeout: 5 * time.Second}}, nil)
	portal, err := deliver.New(deliver.Config{
		Destination: deliver.Destination{Name: "portal", Target: render.Target{Format: "json"},
			Connector: deliver.HTTP{Client: &httpx.Client{Timeout: 5 * time.Second}, URL: plantingPortal(t), ContentType: "application/json"}},
		Serde: serde,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id    string
		stage *deliver.Stage
		kind  stages.Kind
	}{
		{"d-ae", lab, stages.KindPermanent},
		{"d-ce", lab, stages.KindPermanent},
		{"d-ar", lab, stages.KindTransient},
		{"d-cr", lab, stages.KindTransient},
		{"p422", portal, stages.KindPermanent},
		{"p503", portal, stages.KindTransient},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			outs, err := tc.stage.Process(context.Background(), envelope(t, serde, event(tc.id)))
			if stages.KindOf(err) != tc.kind {
				t.Fatalf("err %v: kind %v, want %v", err, stages.KindOf(err), tc.kind)
			}
			assertClean(t, "error text", err.Error())
			code, loc, text := stages.Describe(err)
			assertClean(t, "described error", code+" "+loc+" "+text)
			if d := stages.DetailOf(err); !strings.Contains(d, plantedID) {
				t.Fatalf("error detail %q does not carry the destination's text", d)
			}
			o := outcomeOf(t, serde, outs)
			assertClean(t, "outcome", fmt.Sprintf("%+v", o))
			for _, h := range outs[0].Headers {
				assertClean(t, "outcome header "+h.Key, string(h.Value))
			}
		})
	}
}
