package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/stages/route"
)

// receiver is a stand-in MLLP destination that records what it gets and
// ACKs it AA.
type receiver struct {
	mu   sync.Mutex
	msgs []*hl7v2.Message
	addr string
	srv  *mllp.Server
	stop context.CancelFunc
	done chan struct{}
}

func startReceiver(t *testing.T, addr string) *receiver {
	t.Helper()
	r := &receiver{addr: addr}
	r.start(t)
	t.Cleanup(r.close)
	return r
}

func (r *receiver) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	// The port may still be held briefly after a previous close.
	await.For(t, 5*time.Second, 20*time.Millisecond, func() error {
		ln, err = net.Listen("tcp", r.addr)
		return err
	})
	r.srv = &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		m, err := hl7v2.Parse(append([]byte(nil), req.Payload...))
		if err != nil {
			t.Errorf("receiver got unparseable HL7: %v", err)
			return nil
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
		return hl7v2.BuildACK(m.Header(), m.Delimiters(), hl7v2.AckAA, hl7v2.ACKOptions{ControlID: "R" + m.Get("MSH-10"), Now: time.Now()})
	})}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); _ = r.srv.Serve(ctx, ln) }()
}

func (r *receiver) close() {
	if r.stop != nil {
		r.stop()
		<-r.done
		r.stop = nil
	}
}

func (r *receiver) messages() []*hl7v2.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*hl7v2.Message(nil), r.msgs...)
}

// await waits until the receiver holds exactly want, each message as
// describe puts it, in arrival order.
func (r *receiver) await(t *testing.T, describe func(*hl7v2.Message) string, want ...string) {
	t.Helper()
	await.For(t, 30*time.Second, 20*time.Millisecond, func() error {
		var got []string
		for _, m := range r.messages() {
			got = append(got, describe(m))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("%s has %v, want %v", r.addr, got, want)
		}
		return nil
	})
}

// portal is a stand-in HTTP destination recording JSON documents.
type portal struct {
	mu   sync.Mutex
	docs []map[string]any
	srv  *httptest.Server
}

func startPortal(t *testing.T, addr string) *portal {
	t.Helper()
	p := &portal{}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.docs = append(p.docs, doc)
		p.mu.Unlock()
	}))
	p.srv.Listener = ln
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

func (p *portal) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.docs)
}

// estate is the ports of one test's engine and its stand-ins.
type estate struct {
	EHR, LabResults, Lab, EHRResults, Portal, Admin, HTTP string
	BreakerOpenFor                                        string
}

func newEstate(t *testing.T) estate {
	port := func() string { return freeport.For(t) }
	return estate{
		EHR: port(), LabResults: port(), Lab: port(), EHRResults: port(),
		Portal: port(), Admin: port(), HTTP: port(), BreakerOpenFor: "1s",
	}
}

const estateYAML = `
kafka:
  partitions: 3
admin: {listen: %[6]s}
http: {listen: %[7]s}
inbound:
  - name: ehr
    transport: mllp
    listen: %[1]s
    http: true
    accept:
      message_types: ["ADT^*", "ORM^O01", "OML^O21"]
      required:
        "ADT^*": [PID, PID-3]
  - name: lab-results
    transport: mllp
    listen: %[2]s
    accept:
      message_types: ["ORU^R01"]
destinations:
  - name: lab
    transport: mllp
    address: %[3]s
    format: hl7v2
    hl7_version: "2.5.1"
    ack_timeout: 2s
    connect_timeout: 1s
    retry: {initial: 50ms, max: 500ms, multiplier: 2}
    breaker: {failures: 3, open_for: %[8]s}
  - name: ehr-results
    transport: mllp
    address: %[4]s
    format: hl7v2
    hl7_version: "2.3"
  - name: portal
    transport: http
    url: http://%[5]s/events
    format: json
routes:
  - name: orders-to-lab
    destination: lab
    when: 'event.message_type in ["ORM", "OML"]'
  - name: adt-to-lab
    destination: lab
    when: 'event.message_type == "ADT" && event.trigger_event in ["A01", "A04", "A08", "A28", "A31", "A40"]'
  - name: results-to-ehr
    destination: ehr-results
    when: 'event.provenance.source_interface == "lab-results" && event.message_type == "ORU"'
  - name: adt-to-portal
    destination: portal
    when: 'event.message_type == "ADT" && event.trigger_event in ["A01", "A03", "A04", "A08"]'
`

func (e estate) config(t *testing.T) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "careflow.yaml")
	yaml := fmt.Sprintf(estateYAML, e.EHR, e.LabResults, e.Lab, e.EHRResults, e.Portal, e.Admin, e.HTTP, e.BreakerOpenFor)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startEngine runs an engine on an embedded broker on a random port.
func startEngine(t *testing.T, cfg *config.Config, dataDir string) *engine.Engine {
	t.Helper()
	return startEngineWith(t, engine.Options{Config: cfg, DataDir: dataDir})
}

// startEngineWith is startEngine with options of the test's own; the
// embedded broker's port, the data directory and the instance id default
// to a test's. The engine stops, and must stop cleanly, when the test ends.
func startEngineWith(t *testing.T, opts engine.Options) *engine.Engine {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.EmbeddedPort == 0 {
		opts.EmbeddedPort = -1
	}
	if opts.InstanceID == "" {
		opts.InstanceID = "test"
	}
	ctx, cancel := context.WithCancel(context.Background())
	eng, err := engine.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := eng.Wait(); err != nil {
			t.Errorf("engine stopped with %v", err)
		}
	})
	return eng
}

// adt builds an ADT message for patient p with control id id.
func adt(trigger, p, id string) []byte {
	return []byte(strings.Join([]string{
		"MSH|^~\\&|EHR|HOSP|CAREFLOW|HOSP|20240102030405||ADT^" + trigger + "^ADT_A01|" + id + "|P|2.5.1",
		"EVN|" + trigger + "|20240102030405",
		"PID|1||" + p + "^^^HOSP^MR~NHS" + p + "^^^NHS^NH||DOE^JANE^Q||19800101|F|||1 HIGH ST^^LEEDS^^LS1 1AA^GBR",
		"PV1|1|I|WARD1^101^A^HOSP||||1234^SMITH^JOHN",
	}, "\r") + "\r")
}

func orm(p, id, placer string) []byte {
	return []byte(strings.Join([]string{
		"MSH|^~\\&|EHR|HOSP|LAB|LAB|20240102030405||ORM^O01|" + id + "|P|2.3",
		"PID|1||" + p + "^^^HOSP^MR||DOE^JANE||19800101|F",
		"ORC|NW|" + placer + "||||||||||1234^SMITH^JOHN",
		"OBR|1|" + placer + "||CBC^Full blood count^L|||20240102030405",
	}, "\r") + "\r")
}

// send sends msg over MLLP and returns the parsed ACK.
func send(t *testing.T, c *mllp.Client, msg []byte) hl7v2.ACK {
	t.Helper()
	reply, err := c.Send(context.Background(), msg)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	ack, err := hl7v2.ParseACK(reply)
	if err != nil {
		t.Fatalf("ACK unreadable: %v (%q)", err, reply)
	}
	return ack
}
