package engine_test

// This file holds what the fault-matrix tests share (faults_*_test.go; the
// scripted lab and portal stand-ins are in faults_standins_test.go): an
// engine configuration with short timeouts, a reader that follows
// careflow's topics, and the one check every fault test ends with:
// nothing acknowledged is lost.
// Every message ingest answered AA is, in the end, delivered to each
// destination its routes name or in a dead-letter topic with a code.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/stages/route"
	"github.com/careflow-health/careflow/topics"
)

// faultEstate is one fault test's ports and the settings it varies.
type faultEstate struct {
	EHR, Secure, LabResults, Lab, Portal, Admin, HTTP string
	// AckTimeout is both destinations' ack_timeout.
	AckTimeout string
	// Failures and OpenFor are both destinations' breaker.
	Failures int
	OpenFor  string
	// ReadTimeout and MaxMessageSize are the ehr interface's.
	ReadTimeout, MaxMessageSize string
	// Accept is the ehr interface's accept.message_types, as YAML list items.
	Accept string
	// EHR holds more keys of the ehr interface, each line indented four spaces.
	EHRExtra string
	// Inbound holds more interfaces, each a list item indented two spaces.
	Inbound string
}

func newFaultEstate(t *testing.T) faultEstate {
	t.Helper()
	port := func() string { return freeport.For(t) }
	return faultEstate{
		EHR: port(), Secure: port(), LabResults: port(), Lab: port(), Portal: port(), Admin: port(), HTTP: port(),
		AckTimeout: "1s", Failures: 3, OpenFor: "500ms",
		ReadTimeout: "30s", MaxMessageSize: "4MiB",
		Accept: `"ADT^*", "ORM^O01"`,
	}
}

// faultYAML routes orders and ADT A01/A04/A08 to the lab, discharges (A03)
// to the portal. Retries are quick (20ms..200ms) so that a fault test
// spends its time on the fault, not on backoff.
var faultYAML = template.Must(template.New("faults").Parse(`
kafka:
  partitions: 3
admin: {listen: {{.Admin}}}
http: {listen: {{.HTTP}}}
inbound:
  - name: ehr
    transport: mllp
    listen: {{.EHR}}
    read_timeout: {{.ReadTimeout}}
    max_message_size: {{.MaxMessageSize}}
    accept:
      message_types: [{{.Accept}}]
{{.EHRExtra}}{{.Inbound}}destinations:
  - name: lab
    transport: mllp
    address: {{.Lab}}
    format: hl7v2
    hl7_version: "2.5.1"
    ack_timeout: {{.AckTimeout}}
    connect_timeout: 500ms
    retry: {initial: 20ms, max: 200ms, multiplier: 2}
    breaker: {failures: {{.Failures}}, open_for: {{.OpenFor}}}
  - name: portal
    transport: http
    url: http://{{.Portal}}/events
    format: json
    ack_timeout: {{.AckTimeout}}
    retry: {initial: 20ms, max: 200ms, multiplier: 2}
    breaker: {failures: {{.Failures}}, open_for: {{.OpenFor}}}
routes:
  - name: orders-to-lab
    destination: lab
    when: 'event.message_type == "ORM"'
  - name: adt-to-lab
    destination: lab
    when: 'event.message_type == "ADT" && event.trigger_event in ["A01", "A04", "A08"]'
  - name: discharges-to-portal
    destination: portal
    when: 'event.message_type == "ADT" && event.trigger_event == "A03"'
`))

func (fe faultEstate) config(t *testing.T) *config.Config {
	t.Helper()
	var b strings.Builder
	if err := faultYAML.Execute(&b, fe); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "careflow.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return cfg
}

// faultTail follows careflow's topics (read committed) so that a test can
// poll for what it expects without reading each topic from the start again.
// It is used from the test's goroutine only.
type faultTail struct {
	t     *testing.T
	cl    *kgo.Client
	serde *avro.Serde
	recs  map[string][]*kgo.Record
}

func newFaultTail(t *testing.T, eng *engine.Engine) *faultTail {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(eng.Brokers()...),
		kgo.ConsumeTopics(topics.Outcomes, topics.Raw, topics.Audit, topics.DeadLetter(topics.StageIngest),
			topics.DeadLetter(topics.StageValidate), topics.DeadLetter(topics.StageDeliver)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &faultTail{t: t, cl: cl, serde: eng.Serde(), recs: map[string][]*kgo.Record{}}
}

// poll takes whatever has been committed since the last poll.
func (f *faultTail) poll() {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	f.cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { f.recs[r.Topic] = append(f.recs[r.Topic], r) })
}

// outcomes returns the outcomes read so far with the idempotency key key
// (all of them when key is ""), in the order they were written.
func (f *faultTail) outcomes(key string) []avro.DeliveryOutcome {
	f.t.Helper()
	var out []avro.DeliveryOutcome
	for _, r := range f.recs[topics.Outcomes] {
		var o avro.DeliveryOutcome
		if err := f.serde.Decode(r.Value, &o); err != nil {
			f.t.Fatal(err)
		}
		if key == "" || o.IdempotencyKey == key {
			out = append(out, o)
		}
	}
	return out
}

// faultDeadLetter is one record of a dead-letter topic, decoded.
type faultDeadLetter struct {
	rec *kgo.Record
	avro.DeadLetter
}

func (d faultDeadLetter) header(key string) string {
	for _, h := range d.rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// deadLetters returns stage's dead letters read so far.
func (f *faultTail) deadLetters(stage string) []faultDeadLetter {
	f.t.Helper()
	var out []faultDeadLetter
	for _, r := range f.recs[topics.DeadLetter(stage)] {
		d := faultDeadLetter{rec: r}
		if err := f.serde.Decode(r.Value, &d.DeadLetter); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// faultSent is one message ingest acknowledged: its idempotency key and
// the destinations its routes name.
type faultSent struct {
	key   string
	dests []string
}

func ehrKey(controlID string) string { return "EHR|HOSP|" + controlID }

// unaccounted returns nil once every message in sent is delivered to each
// of its destinations or dead-lettered (by validate, or by deliver for
// that destination) with a code; otherwise it names those still missing.
func (f *faultTail) unaccounted(sent []faultSent) error {
	f.poll()
	type pair struct{ key, dest string }
	done := map[pair]bool{}
	invalid := map[string]bool{}
	for _, o := range f.outcomes("") {
		if o.Status == avro.StatusDelivered {
			done[pair{o.IdempotencyKey, o.Destination}] = true
		}
	}
	for _, d := range f.deadLetters(topics.StageDeliver) {
		if d.ErrorCode != "" && d.header(topics.HeaderDLQCode) == d.ErrorCode {
			done[pair{d.header(topics.HeaderIdempotencyKey), d.header(topics.HeaderDestination)}] = true
		}
	}
	for _, d := range f.deadLetters(topics.StageValidate) {
		if d.ErrorCode != "" {
			invalid[d.header(topics.HeaderIdempotencyKey)] = true
		}
	}
	var missing []string
	for _, s := range sent {
		for _, dest := range s.dests {
			if !done[pair{s.key, dest}] && !invalid[s.key] {
				missing = append(missing, s.key+" → "+dest)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("acknowledged but neither delivered nor dead-lettered: %v", missing)
	}
	return nil
}

// settle waits until nothing in sent is unaccounted for.
func (f *faultTail) settle(sent []faultSent, within time.Duration) {
	f.t.Helper()
	await.For(f.t, within, 20*time.Millisecond, func() error { return f.unaccounted(sent) })
}

// faultMetrics returns the engine's /metrics page.
func faultMetrics(eng *engine.Engine) (string, error) {
	resp, err := http.Get("http://" + eng.AdminAddr() + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// faultRecords counts the records on topic: the sum of its partitions' end
// offsets. careflow.raw and careflow.dlq.ingest are written without
// transactions, so this is exactly how many messages ingest stored there.
func faultRecords(t *testing.T, eng *engine.Engine, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(eng.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// faultSend sends msg on c and fails the test unless ingest answers code.
func faultSend(t *testing.T, c *mllp.Client, msg []byte, code string) hl7v2.ACK {
	t.Helper()
	ack := send(t, c, msg)
	if string(ack.Code) != code {
		t.Fatalf("ACK %s (%s), want %s", ack.Code, ack.Text, code)
	}
	return ack
}
