package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages/sink"
	"github.com/careflow-health/careflow/topics"
	"github.com/careflow-health/careflow/topics/kafka"
)

type fixture struct {
	t     testing.TB
	serde *avro.Serde
	reg   *registry.Store
	cl    *kgo.Client
	addrs []string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := kafka.EnsureTopics(context.Background(), cl, 3, 1, kafka.MaxMessageBytes, kafka.Pipeline([]string{"lab"})...); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, serde: serde, reg: reg, cl: cl, addrs: c.ListenAddrs()}
}

func (f *fixture) produce(topic string, key string, v any) {
	f.t.Helper()
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	default:
		var err error
		if b, err = f.serde.Encode(v); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte(key), Value: b}).FirstErr(); err != nil {
		f.t.Fatal(err)
	}
}

// journey produces message id's records: raw, event, routed to lab and
// delivered there 250ms after ingest. 5 transitions, 1 attempt.
func (f *fixture) journey(id string, ingest time.Time) {
	key := "PATIENT-" + id
	f.produce(topics.Raw, key, &avro.RawMessage{MessageID: id, CorrelationID: id, Interface: "ehr", Transport: "mllp",
		ReceivedAt: ingest, MessageType: "ADT", TriggerEvent: "A01", PatientKey: key})
	f.produce(topics.Events, key, &avro.ClinicalEvent{EventID: id, CorrelationID: id, EventType: "admit", MessageType: "ADT", TriggerEvent: "A01",
		Provenance: avro.Provenance{Interface: "ehr", MessageID: id, EventTime: "20261126100000", IngestTime: ingest}})
	base := avro.DeliveryOutcome{MessageID: id, CorrelationID: id, Interface: "ehr", Destination: "lab", MessageType: "ADT",
		TriggerEvent: "A01", IngestTime: ingest}
	routed, delivered := base, base
	routed.OutcomeID, routed.Stage, routed.Status, routed.At = id+"/route/lab", topics.StageRoute, avro.StatusRouted, ingest.Add(10*time.Millisecond)
	delivered.OutcomeID, delivered.Stage, delivered.Status, delivered.At = id+"/deliver/lab/delivered", topics.StageDeliver, avro.StatusDelivered, ingest.Add(250*time.Millisecond)
	delivered.Attempt, delivered.AckCode, delivered.LatencyMillis = 1, "AA", 5
	f.produce(topics.Outcomes, key, &routed)
	f.produce(topics.Outcomes, key, &delivered)
}

// futureOutcome encodes o with a newer DeliveryOutcome schema that has a
// field this build does not know.
func (f *fixture) futureOutcome(o *avro.DeliveryOutcome) []byte {
	f.t.Helper()
	var schema map[string]any
	if err := json.Unmarshal([]byte(avro.Schemas()[avro.NameDeliveryOutcome]), &schema); err != nil {
		f.t.Fatal(err)
	}
	schema["fields"] = append(schema["fields"].([]any), map[string]any{"name": "site", "type": "string", "default": ""})
	text, _ := json.Marshal(schema)
	id, err := f.reg.Register(context.Background(), avro.NameDeliveryOutcome, string(text))
	if err != nil {
		f.t.Fatalf("register the newer schema: %v", err)
	}
	cur, _ := goavro.NewCodec(avro.Schemas()[avro.NameDeliveryOutcome])
	next, err := goavro.NewCodec(string(text))
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := f.serde.Encode(o)
	if err != nil {
		f.t.Fatal(err)
	}
	native, _, err := cur.NativeFromBinary(b[5:])
	if err != nil {
		f.t.Fatal(err)
	}
	native.(map[string]any)["site"] = "north"
	out, _ := new(sr.ConfluentHeader).AppendEncode(nil, id, nil)
	out, err = next.BinaryFromNative(out, native)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) startSink(t *testing.T, dsn, group string, m *sink.Metrics) (stop func()) {
	t.Helper()
	s, err := sink.New(sink.Config{DSN: dsn, Kafka: []kgo.Opt{kgo.SeedBrokers(f.addrs...)}, Serde: f.serde, Group: group,
		BatchRows: 40, BatchInterval: 100 * time.Millisecond, RetryInitial: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		MetricsEvery: 200 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			t.Errorf("sink: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// caughtUp fails until group has committed every record of the sink's
// inputs.
func (f *fixture) caughtUp(group string) error {
	lags, err := kadm.NewClient(f.cl).Lag(context.Background(), group)
	if err != nil {
		return err
	}
	l := lags[group]
	if l.Error() != nil {
		return l.Error()
	}
	total := l.Lag.Total()
	if total != 0 || len(l.Lag.Sorted()) == 0 {
		return fmt.Errorf("group %s lag %d", group, total)
	}
	return nil
}

// TestSinkOutagesBadRecordsAndReplay: ClickHouse is down when the sink
// starts and again mid-stream; a malformed record and one from a newer
// schema arrive; a second sink replays everything from the start. Every
// message is counted once, and the malformed record is dead-lettered with
// its reason.
func TestSinkOutagesBadRecordsAndReplay(t *testing.T) {
	ch := chtest.Start(t)
	ch.Stop() // down at start
	f := newFixture(t)
	ctx := context.Background()
	ingest := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)

	const first, second = 30, 20
	for i := range first {
		f.journey(fmt.Sprintf("m%03d", i), ingest)
	}
	f.produce(topics.Outcomes, "k", []byte("this is not avro"))
	// Confluent framing with a schema id the registry does not have.
	f.produce(topics.Outcomes, "k", []byte{0, 0, 0, 0x27, 0x0f, 2, 'x'})
	future := avro.DeliveryOutcome{OutcomeID: "future/route/lab", MessageID: "future", CorrelationID: "future", Interface: "ehr",
		Destination: "lab", Stage: topics.StageRoute, Status: avro.StatusRouted, IngestTime: ingest, At: ingest.Add(time.Millisecond)}
	f.produce(topics.Outcomes, "k", f.futureOutcome(&future))
	f.produce(topics.DeadLetter(topics.StageValidate), "k", &avro.DeadLetter{Stage: topics.StageValidate, ErrorCode: "missing_segment",
		ErrorLocation: "PV1", ErrorText: "required segment PV1 is missing", MessageID: "bad1", CorrelationID: "bad1", Interface: "ehr",
		OriginalTopic: topics.Raw, At: ingest})
	f.produce(topics.Audit, "lab-results", &avro.AuditEvent{AuditID: "a1", Recorded: ingest, Type: "writer_refused",
		Action: avro.AuditCreate, Outcome: avro.AuditSeriousFailure, OutcomeDesc: "no credential", AgentType: "address",
		AgentNetwork: "10.1.2.3", EntityType: "interface", EntityWhat: "lab-results", EntityDetail: "http", Count: 7})
	f.produce(topics.Exceptions, "NG1^HOSP", &avro.Exception{ExceptionID: "m001/exception/stale_update", Code: avro.ExceptionStaleUpdate,
		Stage: topics.StageRoute, Interface: "ehr", MessageID: "m001", CorrelationID: "m001", ControlID: "C1",
		PatientKey: "NG1^HOSP", Reason: "older than the update already applied", Action: avro.ActionNotDelivered, At: ingest})
	f.produce(topics.Orders, "NG1^HOSP", &avro.OrderTransition{TransitionID: "m001/order/P1/placed", PlacerOrder: "P1^PAS",
		PatientKey: "NG1^HOSP", State: "placed", MessageID: "m001", CorrelationID: "m001", Interface: "ehr", MessageType: "ORM",
		TriggerEvent: "O01", At: ingest})
	held := avro.Review{ReviewID: "R1", Status: avro.ReviewPending, Code: "identity_conflict", Stage: topics.StageNormalise,
		Reason: "a second NHS identifier", Location: "PID-3[2]", Interface: "ehr", MessageID: "m002", PatientKey: "NG1^HOSP", HeldAt: ingest}
	f.produce(topics.Review, "R1", &held)
	decided := held
	decided.Status, decided.DecidedBy, decided.DecidedAt, decided.DecisionReason = avro.ReviewRejected, "alice", ingest.Add(time.Minute), "wrong patient"
	f.produce(topics.Review, "R1", &decided)

	m := sink.NewMetrics(nil)
	stop := f.startSink(t, ch.DSN("careflow"), "careflow-sink", m)
	// The sink cannot connect; it keeps trying and commits nothing.
	await.For(t, 10*time.Second, 50*time.Millisecond, func() error {
		if n := testutil.ToFloat64(m.InsertErrors); n < 3 {
			return fmt.Errorf("%v failed connection attempts; want 3", n)
		}
		if n := testutil.ToFloat64(m.Rows); n != 0 {
			return fmt.Errorf("rows inserted with ClickHouse down: %v", n)
		}
		if err := f.caughtUp("careflow-sink"); err == nil {
			return fmt.Errorf("offsets committed with ClickHouse down")
		}
		return nil
	})
	ch.Start()
	store := openStore(t, ch.DSN("careflow"))
	wantTransitions := uint64(4*first + 1 + 1) // 4 per journey, the future outcome, the validate dead letter
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error { return expectCount(store, "transitions", wantTransitions) })
	await.For(t, 10*time.Second, 50*time.Millisecond, func() error { return f.caughtUp("careflow-sink") })
	if err := expectCount(store, "audit", 1); err != nil {
		t.Error(err)
	}
	if err := expectCount(store, "exceptions", 1); err != nil {
		t.Error(err)
	}
	if err := expectCount(store, "order_transitions", 1); err != nil {
		t.Error(err)
	}
	// The review item held, then its decision, who made it and why.
	if err := expectCount(store, "reviews", 2); err != nil {
		t.Error(err)
	}

	// The malformed records went to the sink's dead-letter topic, with why.
	codes := map[string]bool{}
	for _, dl := range f.readDeadLetters(t, 2) {
		if dl.OriginalTopic != topics.Outcomes || dl.Stage != topics.StageSink || dl.ErrorText == "" {
			t.Errorf("sink dead letter = %+v; want one from %s with its reason", dl, topics.Outcomes)
		}
		codes[dl.ErrorCode] = true
	}
	if !codes[sink.CodeNotAvro] || !codes[sink.CodeUnknownSchema] {
		t.Errorf("sink dead letter codes %v; want %s and %s", codes, sink.CodeNotAvro, sink.CodeUnknownSchema)
	}
	// The patient key is stored only as its hash.
	steps, err := store.Trace(ctx, "m000")
	if err != nil || len(steps) != 4 {
		t.Fatalf("trace m000 = %d steps, %v; want 4", len(steps), err)
	}
	for _, st := range steps {
		if st.PatientHash != sink.PatientHash([]byte("PATIENT-m000")) {
			t.Errorf("%s row patient_hash = %q; want the SHA-256 of the key", st.Stage, st.PatientHash)
		}
	}
	// The newer-schema record was read, not dead-lettered.
	if steps, err := store.Trace(ctx, "future"); err != nil || len(steps) != 1 {
		t.Errorf("trace of the newer-schema record: %v, %v", steps, err)
	}

	// Down mid-stream: the sink retries, then catches up.
	ch.Stop()
	errorsBefore := testutil.ToFloat64(m.InsertErrors)
	for i := range second {
		f.journey(fmt.Sprintf("n%03d", i), ingest)
	}
	await.For(t, 20*time.Second, 50*time.Millisecond, func() error {
		if testutil.ToFloat64(m.InsertErrors) <= errorsBefore {
			return fmt.Errorf("no failed insert yet")
		}
		return nil
	})
	ch.Start()
	wantTransitions += 4 * second
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error { return expectCount(store, "transitions", wantTransitions) })
	await.For(t, 10*time.Second, 50*time.Millisecond, func() error { return f.caughtUp("careflow-sink") })
	stop()

	// A replay from the start (a new group) inserts everything again;
	// queries still count each message once.
	f.startSink(t, ch.DSN("careflow"), "careflow-sink-replay", nil)
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error { return f.caughtUp("careflow-sink-replay") })
	for table, want := range map[string]uint64{"transitions": wantTransitions, "delivery_attempts": first + second, "dead_letters": 1, "audit": 1, "messages": first + second} {
		if err := expectCount(store, table, want); err != nil {
			t.Error(err)
		}
	}
	rows, err := store.SLA(ctx, analytics.Filter{Destination: "lab"}, analytics.Targets{"lab": 200 * time.Millisecond}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Messages != first+second+1 || rows[0].Delivered != first+second || rows[0].Breaches != first+second+1 || rows[0].Backlog != 1 {
		t.Errorf("sla after replay = %+v; want %d messages, %d delivered, all late against 200ms, the routed one pending and late", rows, first+second+1, first+second)
	}
	if rows[0].P50 != 250*time.Millisecond {
		t.Errorf("p50 = %v; want 250ms", rows[0].P50)
	}
	// A second group reading from the start dead-letters the malformed
	// records again; the sink never reads its own dead letters, so this
	// counts nowhere.
	if n := f.countDeadLetters(t); n != 4 {
		t.Errorf("sink dead letters after replay = %d; want 4", n)
	}
}

func openStore(t *testing.T, dsn string) *analytics.Store {
	t.Helper()
	s, err := analytics.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func expectCount(s *analytics.Store, table string, want uint64) error {
	n, err := s.Count(context.Background(), table)
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%s has %d rows; want %d", table, n, want)
	}
	return nil
}

func (f *fixture) readDeadLetters(t *testing.T, n int) []avro.DeadLetter {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.addrs...), kgo.ConsumeTopics(topics.DeadLetter(topics.StageSink)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []avro.DeadLetter
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d sink dead letters", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var dl avro.DeadLetter
			if err := f.serde.Decode(r.Value, &dl); err != nil {
				t.Fatal(err)
			}
			out = append(out, dl)
		})
	}
	return out
}

func (f *fixture) countDeadLetters(t *testing.T) int64 {
	t.Helper()
	ends, err := kadm.NewClient(f.cl).ListEndOffsets(context.Background(), topics.DeadLetter(topics.StageSink))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// TestSinkWaitsForRegistry: a record whose schema the sink must fetch while
// the registry does not answer is neither dead-lettered nor skipped; the
// sink waits and reads it once the registry is back.
func TestSinkWaitsForRegistry(t *testing.T) {
	ch := chtest.Start(t)
	f := newFixture(t)
	var down atomic.Bool
	var refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			refused.Add(1)
			http.Error(w, "registry down", http.StatusServiceUnavailable)
			return
		}
		f.reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	remote, err := registry.NewRemote(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	sinkSerde, err := avro.NewSerde(context.Background(), remote)
	if err != nil {
		t.Fatal(err)
	}
	future := avro.DeliveryOutcome{OutcomeID: "later/route/lab", MessageID: "later", CorrelationID: "later", Interface: "ehr",
		Destination: "lab", Stage: topics.StageRoute, Status: avro.StatusRouted, IngestTime: time.Now(), At: time.Now()}
	f.produce(topics.Outcomes, "k", f.futureOutcome(&future))
	down.Store(true)

	m := sink.NewMetrics(nil)
	s, err := sink.New(sink.Config{DSN: ch.DSN("careflow"), Kafka: []kgo.Opt{kgo.SeedBrokers(f.addrs...)}, Serde: sinkSerde,
		BatchRows: 10, BatchInterval: 50 * time.Millisecond, RetryInitial: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	store := openStore(t, ch.DSN("careflow"))
	// The sink asks again and again, and meanwhile holds the record.
	await.For(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n := refused.Load(); n < 3 {
			return fmt.Errorf("%d registry requests refused; want 3", n)
		}
		return nil
	})
	if err := expectCount(store, "transitions", 0); err != nil {
		t.Fatalf("with the registry down: %v", err)
	}
	if n := f.countDeadLetters(t); n != 0 {
		t.Fatalf("%d dead letters with the registry down; want 0", n)
	}
	down.Store(false)
	await.For(t, 20*time.Second, 50*time.Millisecond, func() error { return expectCount(store, "transitions", 1) })
	await.For(t, 10*time.Second, 50*time.Millisecond, func() error { return f.caughtUp("careflow-sink") })
}
