package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/topics"
)

var testNow = time.Date(2024, 3, 1, 12, 0, 1, 0, time.UTC)

// smallLimit is the size limit of the "small" interface.
const smallLimit = 8 << 10

type harness struct {
	cluster *kfake.Cluster
	client  *kgo.Client
	serde   *avro.Serde
	stage   *Stage
	reg     *prometheus.Registry
	stop    func() // ends Run and waits for it
}

// newHarness starts a broker, a producer and the stage with two MLLP
// interfaces: "ehr" (default limits) and "small" (smallLimit), plus the
// HTTP-only interface "web".
func newHarness(t testing.TB, mutate ...func(*Config)) *harness {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(3, topics.Raw, topics.DeadLetter(topics.StageIngest), topics.Audit, topics.FHIR),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(8 << 20)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(8<<20), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	serde, err := avro.NewSerde(context.Background(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{
		Interfaces: []Interface{
			{Name: "ehr", Listen: "127.0.0.1:0", HTTP: true},
			{Name: "small", Listen: "127.0.0.1:0", MaxMessageSize: smallLimit, HTTP: true},
			{Name: "web"},
		},
		Client:  client,
		Serde:   serde,
		Now:     func() time.Time { return testNow },
		Metrics: reg,
		Logger:  slog.New(slog.DiscardHandler),
		Audit:   audit.New(audit.Config{Client: client, Serde: serde, Observer: "test"}),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	st, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &harness{cluster: cluster, client: client, serde: serde, stage: st, reg: reg, stop: stop}
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mllpClient returns a client of interface iface.
func (h *harness) mllpClient(t testing.TB, iface string) *mllp.Client {
	t.Helper()
	c := &mllp.Client{Addr: h.stage.Addr(iface).String(), ACKTimeout: 10 * time.Second}
	t.Cleanup(func() { c.Close() })
	return c
}

// send sends payload over MLLP and parses the ACK.
func send(t testing.TB, c *mllp.Client, payload []byte) hl7v2.ACK {
	t.Helper()
	reply, err := c.Send(context.Background(), payload)
	if err != nil {
		t.Fatalf("MLLP send: %v", err)
	}
	ack, err := hl7v2.ParseACK(reply)
	if err != nil {
		t.Fatalf("reply is not an ACK (%v): %q", err, reply)
	}
	return ack
}

// consume reads n records from topic (and waits briefly for any extra).
func (h *harness) consume(t testing.TB, topic string, n int) []*kgo.Record {
	t.Helper()
	// Committed records only, as every stage reads: a FHIR write is a
	// transaction, and an aborted one must not count.
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	// Generous: a loaded CI machine running -race can take seconds.
	deadline := time.Now().Add(30 * time.Second)
	if n == 0 {
		deadline = time.Now().Add(300 * time.Millisecond)
	}
	for len(recs) < n || (n == 0 && time.Now().Before(deadline)) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		if time.Now().After(deadline) {
			break
		}
	}
	if n > 0 && len(recs) == n {
		// Then wait briefly for any record beyond those expected.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		cancel()
	}
	if len(recs) != n {
		t.Fatalf("%s holds %d records, want %d", topic, len(recs), n)
	}
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestMLLPRoundTrip(t *testing.T) {
	h := newHarness(t)
	msg := fixture(t, "adt_a01.hl7")
	ack := send(t, h.mllpClient(t, "ehr"), msg)
	if ack.Code != hl7v2.AckAA || ack.ControlID != "MSG00001" {
		t.Fatalf("ACK %s for %q, want AA for MSG00001", ack.Code, ack.ControlID)
	}
	recs := h.consume(t, topics.Raw, 1)
	r := recs[0]
	var raw avro.RawMessage
	if err := h.serde.Decode(r.Value, &raw); err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "12345^NWH" || raw.PatientKey != "12345^NWH" {
		t.Errorf("key %q, patient key %q; want 12345^NWH", r.Key, raw.PatientKey)
	}
	if string(raw.Payload) != string(msg) {
		t.Error("payload not stored byte for byte")
	}
	if len(raw.MessageID) != 32 || raw.CorrelationID != raw.MessageID {
		t.Errorf("message id %q, correlation id %q", raw.MessageID, raw.CorrelationID)
	}
	want := avro.RawMessage{
		MessageID: raw.MessageID, CorrelationID: raw.MessageID, IdempotencyKey: "EPIC|NORTHWIND|MSG00001",
		Interface: "ehr", Transport: "mllp", ReceivedAt: testNow, Payload: raw.Payload,
		MessageType: "ADT", TriggerEvent: "A01", ControlID: "MSG00001", Version: "2.5.1",
		SendingApplication: "EPIC", SendingFacility: "NORTHWIND", PatientKey: "12345^NWH",
		Writer: "address:127.0.0.1", Charset: "UNICODE UTF-8",
	}
	if !raw.ReceivedAt.Equal(testNow) {
		t.Errorf("received at %v, want %v", raw.ReceivedAt, testNow)
	}
	raw.ReceivedAt = testNow
	if fmt.Sprint(raw) != fmt.Sprint(want) {
		t.Errorf("raw record\n got %+v\nwant %+v", raw, want)
	}
	at := testNow.Format(topics.TimeFormat)
	for key, value := range map[string]string{
		topics.HeaderMessageID:               raw.MessageID,
		topics.HeaderCorrelationID:           raw.MessageID,
		topics.HeaderIdempotencyKey:          "EPIC|NORTHWIND|MSG00001",
		topics.HeaderInterface:               "ehr",
		topics.HeaderIngestTime:              at,
		topics.StageTime(topics.StageIngest): at,
	} {
		if got := header(r, key); got != value {
			t.Errorf("header %s = %q, want %q", key, got, value)
		}
	}
	if got := testutil.ToFloat64(h.stage.metrics.messages.WithLabelValues("ehr", resultAccepted)); got != 1 {
		t.Errorf("accepted counter %v, want 1", got)
	}
}

func TestAckModes(t *testing.T) {
	h := newHarness(t)
	c := h.mllpClient(t, "ehr")
	tests := []struct {
		file string
		code hl7v2.AckCode
		key  string
	}{
		{"adt_a01.hl7", hl7v2.AckAA, "12345^NWH"},
		{"adt_a01_enhanced.hl7", hl7v2.AckCA, "12345^NWH"},
		{"no_pid.hl7", hl7v2.AckAA, "LAB|NORTHWIND|MSG00003"}, // keyed by idempotency key
	}
	for _, tt := range tests {
		msg := fixture(t, tt.file)
		hdr, _ := hl7v2.PeekHeader(msg)
		if ack := send(t, c, msg); ack.Code != tt.code || ack.ControlID != hdr.ControlID {
			t.Errorf("%s: ACK %s/%s, want %s/%s", tt.file, ack.Code, ack.ControlID, tt.code, hdr.ControlID)
		}
	}
	recs := h.consume(t, topics.Raw, len(tests))
	keys := map[string]bool{}
	for _, r := range recs {
		keys[string(r.Key)] = true
	}
	for _, tt := range tests {
		if !keys[tt.key] {
			t.Errorf("no record keyed %q (keys %v)", tt.key, keys)
		}
	}
}

func TestRejectedInput(t *testing.T) {
	tests := []struct {
		name     string
		payload  []byte
		dlqCode  string
		errCode  string
		msa2     string
		location string
	}{
		{"no MSH", fixture(t, "no_msh.hl7"), hl7v2.CodeNoMSH, "100", "", ""},
		{"wrong encoding characters", fixture(t, "bad_encoding.hl7"), hl7v2.CodeBadEncoding, "102", "MSG00004", "MSH-2"},
		{"empty", []byte("\r\n"), hl7v2.CodeEmpty, "100", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			ack := send(t, h.mllpClient(t, "ehr"), tt.payload)
			if ack.Code != hl7v2.AckAR || ack.ControlID != tt.msa2 {
				t.Fatalf("ACK %s/%q, want AR/%q", ack.Code, ack.ControlID, tt.msa2)
			}
			if len(ack.Errors) != 1 || ack.Errors[0].Code != tt.errCode || ack.Errors[0].Location != tt.location {
				t.Fatalf("ERR %+v, want code %s at %q", ack.Errors, tt.errCode, tt.location)
			}
			dl := h.deadLetter(t)
			if dl.ErrorCode != tt.dlqCode || dl.Stage != topics.StageIngest || dl.Interface != "ehr" ||
				string(dl.OriginalValue) != string(tt.payload) || dl.ErrorText == "" {
				t.Fatalf("dead letter %+v", dl)
			}
			h.consume(t, topics.Raw, 0)
			if got := testutil.ToFloat64(h.stage.metrics.messages.WithLabelValues("ehr", resultRejected)); got != 1 {
				t.Errorf("rejected counter %v, want 1", got)
			}
		})
	}
}

// deadLetter reads the single dead letter.
func (h *harness) deadLetter(t testing.TB) avro.DeadLetter {
	t.Helper()
	r := h.consume(t, topics.DeadLetter(topics.StageIngest), 1)[0]
	var dl avro.DeadLetter
	if err := h.serde.Decode(r.Value, &dl); err != nil {
		t.Fatal(err)
	}
	if header(r, topics.HeaderDLQCode) != dl.ErrorCode || header(r, topics.HeaderDLQStage) != topics.StageIngest {
		t.Errorf("dead letter headers %v", r.Headers)
	}
	return dl
}

func TestOversizeFrameThenNext(t *testing.T) {
	h := newHarness(t)
	c := h.mllpClient(t, "small")
	big := append(fixture(t, "adt_a01.hl7"), []byte("OBX|1|ED|PDF||"+strings.Repeat("A", 2*smallLimit)+"\r")...)
	ack := send(t, c, big)
	if ack.Code != hl7v2.AckAR || ack.ControlID != "MSG00001" || len(ack.Errors) != 1 || ack.Errors[0].Code != "207" {
		t.Fatalf("oversize ACK %+v, want AR for MSG00001 with ERR 207", ack)
	}
	// The same connection serves the next message.
	if ack := send(t, c, fixture(t, "adt_a01_enhanced.hl7")); ack.Code != hl7v2.AckCA {
		t.Fatalf("next message ACK %s, want CA", ack.Code)
	}
	dl := h.deadLetter(t)
	if dl.ErrorCode != CodeTooLarge || len(dl.OriginalValue) != smallLimit || string(dl.OriginalValue) != string(big[:smallLimit]) {
		t.Fatalf("dead letter code %s with %d bytes, want %s with the first %d", dl.ErrorCode, len(dl.OriginalValue), CodeTooLarge, smallLimit)
	}
	h.consume(t, topics.Raw, 1)
}

func TestPayloadKeptByteForByte(t *testing.T) {
	h := newHarness(t)
	c := h.mllpClient(t, "ehr")
	latin1 := fixture(t, "latin1.hl7")
	obx := "OBX|1|ED|PDF^Report||^AP^PDF^Base64^" + strings.Repeat("QUJD", 1<<18) + "||||||F\r" // 1 MiB OBX-5
	large := append(fixture(t, "adt_a01.hl7"), obx...)
	for _, msg := range [][]byte{latin1, large} {
		if ack := send(t, c, msg); ack.Code != hl7v2.AckAA {
			t.Fatalf("ACK %s (%+v) for a %d-byte message, want AA", ack.Code, ack.Errors, len(msg))
		}
	}
	recs := h.consume(t, topics.Raw, 2)
	for i, want := range [][]byte{latin1, large} {
		var raw avro.RawMessage
		if err := h.serde.Decode(recs[i].Value, &raw); err != nil {
			t.Fatal(err)
		}
		if string(raw.Payload) != string(want) {
			t.Errorf("message %d: stored %d bytes differ from the %d sent", i, len(raw.Payload), len(want))
		}
	}
}

func TestKafkaUnavailable(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ProduceTimeout = 300 * time.Millisecond })
	c := h.mllpClient(t, "ehr")
	if ack := send(t, c, fixture(t, "adt_a01.hl7")); ack.Code != hl7v2.AckAA {
		t.Fatalf("before outage: %s", ack.Code)
	}
	h.cluster.Close()
	for file, want := range map[string]hl7v2.AckCode{"adt_a01.hl7": hl7v2.AckAR, "adt_a01_enhanced.hl7": hl7v2.AckCR} {
		ack := send(t, c, fixture(t, file))
		if ack.Code != want {
			t.Fatalf("%s during outage: ACK %s, want %s", file, ack.Code, want)
		}
		if len(ack.Errors) != 1 || ack.Errors[0].Code != "207" {
			t.Fatalf("%s: ERR %+v, want 207", file, ack.Errors)
		}
	}
	if got := testutil.ToFloat64(h.stage.metrics.messages.WithLabelValues("ehr", resultError)); got != 2 {
		t.Errorf("error counter %v, want 2", got)
	}
}

func TestConcurrentConnections(t *testing.T) {
	h := newHarness(t)
	const conns, perConn = 8, 10
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			c := &mllp.Client{Addr: h.stage.Addr("ehr").String(), ACKTimeout: 10 * time.Second}
			defer c.Close()
			for j := range perConn {
				id := fmt.Sprintf("C%dM%d", i, j)
				msg := fmt.Sprintf("MSH|^~\\&|APP%d|FAC|CAREFLOW|FAC|20240301||ADT^A08|%s|P|2.5\rPID|1||P%d^^^NWH^MR\r", i, id, i)
				reply, err := c.Send(context.Background(), []byte(msg))
				if err != nil {
					t.Error(err)
					return
				}
				ack, err := hl7v2.ParseACK(reply)
				if err != nil || ack.Code != hl7v2.AckAA || ack.ControlID != id {
					t.Errorf("connection %d: ACK %+v (%v), want AA for %s", i, ack, err, id)
					return
				}
			}
		})
	}
	wg.Wait()
	recs := h.consume(t, topics.Raw, conns*perConn)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[header(r, topics.HeaderIdempotencyKey)] = true
	}
	if len(seen) != conns*perConn {
		t.Fatalf("%d distinct messages on %s, want %d", len(seen), topics.Raw, conns*perConn)
	}
}

func TestMetricsConnections(t *testing.T) {
	h := newHarness(t)
	c := h.mllpClient(t, "ehr")
	send(t, c, fixture(t, "adt_a01.hl7"))
	gauge := h.stage.metrics.connections.WithLabelValues("ehr")
	if got := testutil.ToFloat64(gauge); got != 1 {
		t.Fatalf("connections gauge %v with one client, want 1", got)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(gauge) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("connections gauge did not return to 0")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, err := testutil.GatherAndCount(h.reg, "careflow_ingest_ack_seconds"); err != nil || n != 1 {
		t.Fatalf("ack histogram series %d (%v), want 1", n, err)
	}
}

func TestNewValidates(t *testing.T) {
	serde, _ := avro.NewSerde(context.Background(), testRegistry(t))
	client, _ := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	defer client.Close()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no client", Config{Serde: serde}},
		{"no serde", Config{Client: client}},
		{"unnamed interface", Config{Client: client, Serde: serde, Interfaces: []Interface{{Listen: ":0"}}}},
		{"duplicate", Config{Client: client, Serde: serde, Interfaces: []Interface{{Name: "a", Listen: ":0"}, {Name: "a", Listen: ":0"}}}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: New accepted it", tt.name)
		}
	}
}

func TestListenError(t *testing.T) {
	h := newHarness(t)
	taken := h.stage.Addr("ehr").String()
	st, err := New(Config{Client: h.client, Serde: h.serde, Interfaces: []Interface{{Name: "dup", Listen: taken}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Listen(); err == nil || !strings.Contains(err.Error(), "dup") {
		t.Fatalf("Listen on a taken port = %v, want an error naming the interface", err)
	}
}

// A panic while accepting a message (here forced through the clock) is
// answered AR and the message dead-lettered; the listener keeps serving.
func TestPanicIsRejectedNotFatal(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, func(c *Config) {
		c.Now = func() time.Time {
			if calls.Add(1) == 1 {
				panic("clock broke")
			}
			return time.Now()
		}
	})
	c := h.mllpClient(t, "ehr")
	ack := send(t, c, fixture(t, "adt_a01.hl7"))
	if ack.Code != hl7v2.AckAR {
		t.Fatalf("ACK after a panic = %s, want AR", ack.Code)
	}
	if dl := h.deadLetter(t); dl.ErrorCode != "ingest.panic" {
		t.Fatalf("dead letter code %q", dl.ErrorCode)
	}
	if ack := send(t, c, fixture(t, "adt_a01.hl7")); ack.Code != hl7v2.AckAA {
		t.Fatalf("the next message got %s, want AA", ack.Code)
	}
}

// testRegistry is careflow's own schema registry, in a temporary folder.
func testRegistry(t testing.TB) *registry.Store {
	t.Helper()
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return reg
}
