package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/stages/replay"
	"github.com/careflow-health/careflow/topics"
)

// fixture is an in-process Kafka with careflow's topics (3 partitions
// each) and a schema registry.
type fixture struct {
	opts   []kgo.Opt
	serde  *avro.Serde
	client *kgo.Client // manual partitioner
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	seed := []string{topics.Raw, topics.Valid, topics.Events, topics.Outbound("lab"), topics.Outbound("portal"), topics.Audit, topics.Replays}
	for _, s := range topics.Stages {
		seed = append(seed, topics.DeadLetter(s))
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, seed...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := httptest.NewServer(store)
	t.Cleanup(reg.Close)
	serde, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return fixture{opts: opts, serde: serde, client: cl}
}

// deadLetter writes dl on its stage's dead-letter topic, on partition p,
// as the stages do (stages.DeadLetterEnvelope).
func (fx fixture) deadLetter(t *testing.T, p int32, dl avro.DeadLetter) {
	t.Helper()
	var base stages.Headers
	for _, h := range dl.OriginalHeaders {
		base = append(base, stages.Header{Key: h.Key, Value: h.Value})
	}
	env := stages.DeadLetterEnvelope(fx.serde, &dl, dl.OriginalKey, base)
	r := &kgo.Record{Topic: env.Topic, Partition: p, Key: env.Key, Value: env.Value}
	for _, h := range env.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	if err := fx.client.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// records is every committed record on topic.
func (fx fixture) records(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	if err := stages.ReadToEnd(context.Background(), fx.opts, topic, []int32{0, 1, 2}, kgo.NewOffset().AtStart(),
		func(r *kgo.Record) { out = append(out, r) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// ends sums the end offsets of topics: anything written, committed or
// aborted, moves it.
func (fx fixture) ends(t *testing.T, names ...string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(fx.opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), names...)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

var now = time.Now().UTC().Truncate(time.Millisecond)

func headers(kv ...string) []avro.Header {
	var out []avro.Header
	for i := 0; i < len(kv); i += 2 {
		out = append(out, avro.Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return out
}

// seed writes four dead letters: validate:0:0, deliver:1:0, deliver:1:1
// and ingest:0:0.
func seed(t *testing.T, fx fixture) {
	t.Helper()
	fx.deadLetter(t, 0, avro.DeadLetter{Stage: topics.StageValidate, ErrorCode: "hl7.unsupported_message_type", ErrorLocation: "MSH-9.2",
		ErrorText: "validate: interface ehr does not accept ADT^A04", MessageID: "m-1", CorrelationID: "c-1", Interface: "ehr",
		OriginalTopic: topics.Raw, OriginalPartition: 2, OriginalOffset: 5, OriginalKey: []byte("H1^HOSP"), OriginalValue: []byte{0, 1, 2, 0xff, 'r'},
		OriginalHeaders: headers(topics.HeaderMessageID, "m-1", topics.HeaderIdempotencyKey, "EHR|HOSP|C1", topics.HeaderInterface, "ehr"),
		At:              now.Add(-3 * time.Hour)})
	fx.deadLetter(t, 1, avro.DeadLetter{Stage: topics.StageDeliver, ErrorCode: "ack.AE", ErrorText: "destination lab answered AE",
		ErrorDetail: "patient SMITH unknown", MessageID: "m-2", Interface: "ehr",
		OriginalTopic: topics.Outbound("lab"), OriginalPartition: 1, OriginalOffset: 7, OriginalKey: []byte("H2^HOSP"), OriginalValue: []byte("event-2"),
		OriginalHeaders: headers(topics.HeaderMessageID, "m-2", topics.HeaderReplayOf, "deliver:0:9"), At: now.Add(-time.Hour)})
	fx.deadLetter(t, 1, avro.DeadLetter{Stage: topics.StageDeliver, ErrorCode: "ack.AE", ErrorText: "destination portal answered HTTP 422",
		MessageID: "m-3", Interface: "lab-results",
		OriginalTopic: topics.Outbound("portal"), OriginalPartition: 0, OriginalOffset: 2, OriginalKey: []byte("H3^HOSP"), OriginalValue: []byte("event-3"),
		At: now.Add(-2 * time.Hour)})
	fx.deadLetter(t, 0, avro.DeadLetter{Stage: topics.StageIngest, ErrorCode: "hl7.parse", ErrorText: "ingest: no MSH segment",
		MessageID: "m-4", Interface: "ehr", OriginalValue: []byte("garbage"), At: now.Add(-30 * time.Minute)})
}

func ids(ls []replay.Letter) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func TestList(t *testing.T) {
	fx := newFixture(t)
	seed(t, fx)
	ctx := context.Background()
	if _, err := replay.Replay(ctx, fx.opts, fx.serde, replay.Request{Filter: replay.Filter{IDs: []string{"validate:0:0"}}, By: "ann", Reason: "accepts A04 now"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    replay.Filter
		want []string
	}{
		{"everything, newest first", replay.Filter{}, []string{"ingest:0:0", "deliver:1:0", "deliver:1:1", "validate:0:0"}},
		{"one stage", replay.Filter{Stage: topics.StageDeliver}, []string{"deliver:1:0", "deliver:1:1"}},
		{"code", replay.Filter{Code: "hl7.parse"}, []string{"ingest:0:0"}},
		{"interface", replay.Filter{Interface: "lab-results"}, []string{"deliver:1:1"}},
		{"destination, from the original topic", replay.Filter{Destination: "lab"}, []string{"deliver:1:0"}},
		{"since is inclusive", replay.Filter{Since: now.Add(-2 * time.Hour)}, []string{"ingest:0:0", "deliver:1:0", "deliver:1:1"}},
		{"until is exclusive", replay.Filter{Until: now.Add(-2 * time.Hour)}, []string{"validate:0:0"}},
		{"ids", replay.Filter{IDs: []string{"deliver:1:1", "validate:0:0", "route:0:0"}}, []string{"deliver:1:1", "validate:0:0"}},
		{"not replayed", replay.Filter{NotReplayed: true}, []string{"ingest:0:0", "deliver:1:0", "deliver:1:1"}},
		{"every field must match", replay.Filter{Stage: topics.StageDeliver, Interface: "ehr", Code: "ack.AE"}, []string{"deliver:1:0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls, err := replay.List(ctx, fx.opts, fx.serde, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(ls); !slices.Equal(got, tc.want) {
				t.Fatalf("List(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
}

func TestGet(t *testing.T) {
	fx := newFixture(t)
	seed(t, fx)
	ctx := context.Background()
	l, err := replay.Get(ctx, fx.opts, fx.serde, "deliver:1:0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Stage != topics.StageDeliver || l.Code != "ack.AE" || l.Text != "destination lab answered AE" || l.Interface != "ehr" ||
		l.Destination != "lab" || l.MessageID != "m-2" || !l.At.Equal(now.Add(-time.Hour)) ||
		l.OriginalTopic != topics.Outbound("lab") || l.OriginalPartition != 1 || l.OriginalOffset != 7 ||
		l.Record == nil || string(l.Record.OriginalValue) != "event-2" || l.Record.ErrorDetail != "patient SMITH unknown" || len(l.Replays) != 0 {
		t.Fatalf("Get(deliver:1:0) = %+v", l)
	}
	for _, id := range []string{"deliver:1:5", "deliver:2:0", "sink:0:0", "deliver:1", "deliver:x:0", ""} {
		if _, err := replay.Get(ctx, fx.opts, fx.serde, id); !errors.Is(err, replay.ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
		}
	}
}

// A replay puts the original back where it was, byte for byte, with the
// letter's id, and marks and audits it in the same transaction; a second
// is refused and writes nothing; Again replays it once more.
func TestReplay(t *testing.T) {
	fx := newFixture(t)
	seed(t, fx)
	ctx := context.Background()
	written := func() int64 { return fx.ends(t, topics.Raw, topics.Outbound("lab"), topics.Replays, topics.Audit) }
	before := written()

	for _, tc := range []struct {
		name string
		req  replay.Request
		want error
	}{
		{"no reason", replay.Request{Filter: replay.Filter{IDs: []string{"validate:0:0"}}, By: "ann", Reason: "  "}, replay.ErrNoReason},
		{"no selection", replay.Request{Filter: replay.Filter{NotReplayed: true}, By: "ann", Reason: "fixed"}, replay.ErrNoSelection},
		{"unknown id", replay.Request{Filter: replay.Filter{IDs: []string{"validate:0:0", "validate:2:3"}}, By: "ann", Reason: "fixed"}, replay.ErrNotFound},
	} {
		if _, err := replay.Replay(ctx, fx.opts, fx.serde, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	dry, err := replay.Replay(ctx, fx.opts, fx.serde, replay.Request{Filter: replay.Filter{Stage: topics.StageValidate}, DryRun: true})
	if err != nil || !slices.Equal(ids(dry.Replayed), []string{"validate:0:0"}) || len(dry.Refused) != 0 {
		t.Fatalf("dry run: %v, %v", dry, err)
	}
	if written() != before {
		t.Fatal("refused requests or a dry run wrote something")
	}

	at := now.Add(time.Minute)
	res, err := replay.Replay(ctx, fx.opts, fx.serde, replay.Request{Filter: replay.Filter{IDs: []string{"validate:0:0", "ingest:0:0"}},
		By: "ann", Reason: "ehr accepts ADT^A04 now", At: at, Observer: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replayed) != 1 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, replay.ErrNotReplayable) ||
		res.Refused[0].Letter.ID != "ingest:0:0" || !strings.Contains(res.Refused[0].Err.Error(), "sender must correct") {
		t.Fatalf("replay of a validate and an ingest letter: %+v", res)
	}
	raw := fx.records(t, topics.Raw)
	if len(raw) != 1 {
		t.Fatalf("%d records on %s, want the one replayed", len(raw), topics.Raw)
	}
	r := raw[0]
	wantHeaders := []kgo.RecordHeader{{Key: topics.HeaderMessageID, Value: []byte("m-1")}, {Key: topics.HeaderIdempotencyKey, Value: []byte("EHR|HOSP|C1")},
		{Key: topics.HeaderInterface, Value: []byte("ehr")}, {Key: topics.HeaderReplayOf, Value: []byte("validate:0:0")}}
	if r.Partition != 2 || string(r.Key) != "H1^HOSP" || !bytes.Equal(r.Value, []byte{0, 1, 2, 0xff, 'r'}) || !slices.EqualFunc(r.Headers, wantHeaders,
		func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
		t.Fatalf("replayed record: partition %d key %q value %q headers %v", r.Partition, r.Key, r.Value, r.Headers)
	}
	m := res.Replayed[0].Replays
	if len(m) != 1 || m[0].By != "ann" || m[0].Reason != "ehr accepts ADT^A04 now" || !m[0].At.Equal(at) || m[0].Again ||
		m[0].Topic != topics.Raw || m[0].Partition != 2 || m[0].Offset != r.Offset {
		t.Fatalf("marks: %+v", m)
	}
	markers := fx.records(t, topics.Replays)
	var stored []replay.Mark
	if len(markers) != 1 || string(markers[0].Key) != "validate:0:0" || json.Unmarshal(markers[0].Value, &stored) != nil || len(stored) != 1 || !stored[0].At.Equal(m[0].At) || stored[0].Offset != m[0].Offset || stored[0].By != "ann" {
		t.Fatalf("careflow.replays: %v", markers)
	}
	evs := fx.records(t, topics.Audit)
	var ev avro.AuditEvent
	if len(evs) != 1 || fx.serde.Decode(evs[0].Value, &ev) != nil {
		t.Fatalf("%d audit records, want 1", len(evs))
	}
	if ev.Type != audit.TypeDeadLetterReplayed || ev.Action != avro.AuditExecute || ev.AgentType != audit.AgentUser || ev.AgentWho != "ann" ||
		ev.EntityType != audit.EntityDeadLetter || ev.EntityWhat != "validate:0:0" || ev.EntityDetail != "careflow.raw partition 2 offset 5" ||
		ev.OutcomeDesc != "ehr accepts ADT^A04 now" || ev.SourceObserver != "test" || ev.AuditID == "" {
		t.Fatalf("audit record: %+v", ev)
	}

	before = written()
	res, err = replay.Replay(ctx, fx.opts, fx.serde, replay.Request{Filter: replay.Filter{IDs: []string{"validate:0:0"}}, By: "bob", Reason: "again?"})
	if err != nil || len(res.Replayed) != 0 || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, replay.ErrReplayed) ||
		!strings.Contains(res.Refused[0].Err.Error(), "by ann") {
		t.Fatalf("second replay: %+v, %v", res, err)
	}
	if written() != before {
		t.Fatal("a refused replay wrote something")
	}
	// A filter that leaves replayed letters out does not refuse them.
	res, err = replay.Replay(ctx, fx.opts, fx.serde, replay.Request{Filter: replay.Filter{Stage: topics.StageValidate, NotReplayed: true}, By: "bob", Reason: "again?"})
	if err != nil || len(res.Replayed)+len(res.Refused) != 0 {
		t.Fatalf("not-replayed filter: %+v, %v", res, err)
	}

	res, err = replay.Replay(ctx, fx.opts, fx.serde, replay.Request{Filter: replay.Filter{IDs: []string{"validate:0:0"}}, By: "bob", Reason: "lab lost it", Again: true})
	if err != nil || len(res.Replayed) != 1 {
		t.Fatalf("replay again: %+v, %v", res, err)
	}
	l, err := replay.Get(ctx, fx.opts, fx.serde, "validate:0:0")
	if err != nil || len(l.Replays) != 2 || l.Replays[0].By != "ann" || l.Replays[1].By != "bob" || !l.Replays[1].Again {
		t.Fatalf("after replaying again: %+v, %v", l, err)
	}
	if n := len(fx.records(t, topics.Raw)); n != 2 {
		t.Fatalf("%d records on %s after replaying again, want 2", n, topics.Raw)
	}

	// A letter of a record that was itself a replay carries this letter's
	// id, not the earlier one's.
	if _, err := replay.Replay(ctx, fx.opts, fx.serde, replay.Request{Filter: replay.Filter{Destination: "lab"}, By: "ann", Reason: "lab fixed"}); err != nil {
		t.Fatal(err)
	}
	out := fx.records(t, topics.Outbound("lab"))
	if len(out) != 1 || out[0].Partition != 1 || len(out[0].Headers) != 2 || string(out[0].Headers[1].Value) != "deliver:1:0" {
		t.Fatalf("replayed lab record: %v", out)
	}
}

// Two replays of one letter at once: exactly one puts it back. The other
// is fenced (its commit fails) or reads the first's marker and is refused.
func TestReplayConcurrentFencing(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	const rounds = 4
	for i := range rounds {
		fx.deadLetter(t, 0, avro.DeadLetter{Stage: topics.StageRoute, ErrorCode: "route.x", Interface: "ehr", OriginalTopic: topics.Events,
			OriginalPartition: 1, OriginalValue: []byte{byte(i)}, At: now})
	}
	for i := range rounds {
		id := replay.ID(topics.StageRoute, 0, int64(i))
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]replay.Result, 2)
		errs := make([]error, 2)
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[j], errs[j] = replay.Replay(ctx, fx.opts, fx.serde, replay.Request{Filter: replay.Filter{IDs: []string{id}}, By: "op", Reason: "both"})
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for j := range 2 {
			switch {
			case errs[j] == nil && len(results[j].Replayed) == 1:
				ok++
			case errs[j] != nil && !strings.Contains(errs[j].Error(), "nothing was replayed"):
				t.Fatalf("round %d, replay %d: the error does not say nothing was replayed: %v", i, j, errs[j])
			case errs[j] == nil && (len(results[j].Refused) != 1 || !errors.Is(results[j].Refused[0].Err, replay.ErrReplayed)):
				t.Fatalf("round %d, replay %d: neither replayed, refused as replayed nor failed: %+v", i, j, results[j])
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d replays succeeded (errors %v), want exactly 1", i, ok, errs)
		}
	}
	if n := len(fx.records(t, topics.Events)); n != rounds {
		t.Fatalf("%d records on %s, want %d: one per letter", n, topics.Events, rounds)
	}
	for _, r := range fx.records(t, topics.Replays) {
		var ms []replay.Mark
		if err := json.Unmarshal(r.Value, &ms); err != nil || len(ms) != 1 {
			t.Fatalf("marker of %s: %s", r.Key, r.Value)
		}
	}
}

// Letters of one partition are replayed in their originals' order, not
// newest first: a patient's records stay in order.
func TestReplayKeepsOriginalOrder(t *testing.T) {
	fx := newFixture(t)
	for i, off := range []int64{9, 2, 5} {
		fx.deadLetter(t, 0, avro.DeadLetter{Stage: topics.StageRoute, ErrorCode: "route.x", Interface: "ehr", OriginalTopic: topics.Events,
			OriginalPartition: 1, OriginalOffset: off, OriginalValue: []byte{byte(off)}, At: now.Add(time.Duration(i) * time.Minute)})
	}
	res, err := replay.Replay(context.Background(), fx.opts, fx.serde, replay.Request{Filter: replay.Filter{Stage: topics.StageRoute}, By: "ann", Reason: "route fixed"})
	if err != nil || len(res.Replayed) != 3 {
		t.Fatalf("%+v, %v", res, err)
	}
	var got []byte
	for _, r := range fx.records(t, topics.Events) {
		got = append(got, r.Value...)
	}
	if !bytes.Equal(got, []byte{2, 5, 9}) {
		t.Fatalf("replayed in the order of original offsets %v, want [2 5 9]", got)
	}
}

// A record on a dead-letter topic that is not a DeadLetter (its encoding
// failed when it was written, and the original bytes were kept) is listed
// from its headers and refused as not replayable.
func TestUnreadableLetter(t *testing.T) {
	fx := newFixture(t)
	r := &kgo.Record{Topic: topics.DeadLetter(topics.StageNormalise), Partition: 2, Value: []byte("original bytes"), Headers: []kgo.RecordHeader{
		{Key: topics.HeaderDLQCode, Value: []byte("normalise.x")}, {Key: topics.HeaderDLQTopic, Value: []byte(topics.Valid)},
		{Key: topics.HeaderDLQPartition, Value: []byte("1")}, {Key: topics.HeaderDLQOffset, Value: []byte("3")}}}
	if err := fx.client.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	l, err := replay.Get(context.Background(), fx.opts, fx.serde, "normalise:2:0")
	if err != nil || l.Code != "normalise.x" || l.OriginalTopic != topics.Valid || l.OriginalPartition != 1 || l.OriginalOffset != 3 {
		t.Fatalf("Get: %+v, %v", l, err)
	}
	res, err := replay.Replay(context.Background(), fx.opts, fx.serde, replay.Request{Filter: replay.Filter{IDs: []string{l.ID}}, By: "ann", Reason: "x"})
	if err != nil || len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, replay.ErrNotReplayable) {
		t.Fatalf("replay of an unreadable letter: %+v, %v", res, err)
	}
	if n := len(fx.records(t, topics.Valid)); n != 0 {
		t.Fatalf("%d records on %s, want none", n, topics.Valid)
	}
}
