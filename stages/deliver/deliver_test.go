package deliver_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/deliver"
	"github.com/careflow-health/careflow/stages/deliver/render"
	"github.com/careflow-health/careflow/topics"
)

// standIn is a receiving system on loopback whose answers a test scripts.
type standIn struct {
	mu       sync.Mutex
	answers  []string // "AA", "AE", "AR", "garbage"; the last one repeats
	received [][]byte
	addr     string
}

func startStandIn(t *testing.T, answers ...string) *standIn {
	t.Helper()
	s := &standIn{answers: answers}
	s.serve(t, "127.0.0.1:0")
	return s
}

// serve starts (or restarts) the stand-in on addr; stop ends it and closes
// its connections.
func (s *standIn) serve(t *testing.T, addr string) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	srv := &mllp.Server{Handler: mllp.HandlerFunc(func(_ context.Context, req mllp.Request) []byte {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.received = append(s.received, append([]byte(nil), req.Payload...))
		ans := s.answers[min(len(s.received)-1, len(s.answers)-1)]
		if ans == "garbage" {
			return []byte("HTTP/1.1 400 Bad Request\r\n\r\n")
		}
		m, err := hl7v2.Parse(req.Payload)
		if err != nil {
			t.Errorf("stand-in received unparseable HL7: %v", err)
			return nil
		}
		opts := hl7v2.ACKOptions{ControlID: "ACK1", Now: time.Now()}
		if ans == "wrongid" {
			h := m.Header()
			h.ControlID = "SOMEOTHER"
			return hl7v2.BuildACK(h, m.Delimiters(), hl7v2.AckAA, opts)
		}
		if ans == "AE" {
			opts.Errors = []hl7v2.AckError{{Code: "103", Location: "PID-8", Severity: "E", Text: "unknown sex code"}}
		}
		return hl7v2.BuildACK(m.Header(), m.Delimiters(), hl7v2.AckCode(ans), opts)
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func (s *standIn) controlIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, b := range s.received {
		m, err := hl7v2.Parse(b)
		if err == nil {
			ids = append(ids, m.Get("MSH-10"))
		}
	}
	return ids
}

func newSerde(t testing.TB) *avro.Serde {
	t.Helper()
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := avro.NewSerde(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func event(id string) *avro.ClinicalEvent {
	return &avro.ClinicalEvent{
		EventID: id, CorrelationID: id, IdempotencyKey: "EHR|HOSP|" + id,
		EventType: "admit", MessageType: "ADT", TriggerEvent: "A01",
		Patient: avro.Patient{
			Identifiers: []avro.Identifier{{Value: "12345", AssigningAuthority: "HOSP", TypeCode: "MR"}},
			FamilyName:  "TEST", GivenNames: []string{"PATIENT"}, BirthDate: "19700101", Sex: "F",
		},
		Encounter:  &avro.Encounter{VisitNumber: "V1", PatientClass: "I", PointOfCare: "WARD1"},
		Provenance: avro.Provenance{Interface: "ehr", MessageID: id, ControlID: "C" + id, Version: "2.5.1", IngestTime: time.Now().Add(-time.Second)},
	}
}

func envelope(t *testing.T, serde *avro.Serde, ev *avro.ClinicalEvent) stages.Envelope {
	t.Helper()
	b, err := serde.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	var h stages.Headers
	h.Set(topics.HeaderMessageID, ev.EventID)
	h.Set(topics.HeaderIngestTime, time.Now().UTC().Format(topics.TimeFormat))
	return stages.Envelope{Topic: topics.Outbound("lab"), Key: []byte("12345^HOSP"), Value: b, Headers: h}
}

func newStage(t *testing.T, serde *avro.Serde, conn deliver.Connector, dedup *stages.Dedup) *deliver.Stage {
	t.Helper()
	st, err := deliver.New(deliver.Config{
		Destination: deliver.Destination{Name: "lab", Connector: conn, BreakerFailures: 3, BreakerOpenFor: time.Hour,
			Target: render.Target{Format: "hl7v2", Version: "2.5.1", SendingApplication: "CAREFLOW", ReceivingApplication: "LAB"}},
		Serde: serde, Dedup: dedup,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func outcomeOf(t *testing.T, serde *avro.Serde, outs []stages.Envelope) avro.DeliveryOutcome {
	t.Helper()
	if len(outs) != 1 || outs[0].Topic != topics.Outcomes {
		t.Fatalf("want one outcome record, got %d", len(outs))
	}
	var o avro.DeliveryOutcome
	if err := serde.Decode(outs[0].Value, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestDeliverMLLPAnswers(t *testing.T) {
	serde := newSerde(t)
	tests := []struct {
		answer   string
		status   string
		kind     stages.Kind // 0: no error
		code     string
		location string
	}{
		{"AA", avro.StatusDelivered, 0, "", ""},
		{"CA", avro.StatusDelivered, 0, "", ""},
		{"AE", avro.StatusRejected, stages.KindPermanent, "ack.AE", "PID-8"},
		{"AR", avro.StatusRetrying, stages.KindTransient, "ack.AR", ""},
		{"garbage", avro.StatusRetrying, stages.KindTransient, "ack.unreadable", ""},
		// An AA for another message must not count as this one's.
		{"wrongid", avro.StatusRetrying, stages.KindTransient, "ack.control_id_mismatch", ""},
	}
	for _, tc := range tests {
		t.Run(tc.answer, func(t *testing.T) {
			si := startStandIn(t, tc.answer)
			st := newStage(t, serde, deliver.MLLP{Client: &mllp.Client{Addr: si.addr, ACKTimeout: 5 * time.Second}}, nil)
			outs, err := st.Process(context.Background(), envelope(t, serde, event("m1")))
			o := outcomeOf(t, serde, outs)
			if o.Status != tc.status || o.ErrorCode != tc.code || o.ErrorLocation != tc.location || o.Destination != "lab" {
				t.Fatalf("outcome = status %q code %q location %q, want %q %q %q", o.Status, o.ErrorCode, o.ErrorLocation, tc.status, tc.code, tc.location)
			}
			if tc.kind == 0 && err != nil || tc.kind != 0 && stages.KindOf(err) != tc.kind {
				t.Fatalf("err = %v (kind %v), want kind %v", err, stages.KindOf(err), tc.kind)
			}
			if o.ControlID == "" || si.controlIDs()[0] != o.ControlID {
				t.Fatalf("outcome control id %q, receiver saw %v", o.ControlID, si.controlIDs())
			}
		})
	}
}

// A retried message keeps its control id, so the receiver can spot a
// duplicate; attempts are numbered.
func TestDeliverRetryKeepsControlID(t *testing.T) {
	serde := newSerde(t)
	si := startStandIn(t, "AR", "AR", "AA")
	st := newStage(t, serde, deliver.MLLP{Client: &mllp.Client{Addr: si.addr}}, nil)
	in := envelope(t, serde, event("m2"))
	var last avro.DeliveryOutcome
	for i := 1; i <= 3; i++ {
		outs, _ := st.Process(context.Background(), in)
		last = outcomeOf(t, serde, outs)
		if last.Attempt != i {
			t.Fatalf("attempt %d recorded as %d", i, last.Attempt)
		}
	}
	if last.Status != avro.StatusDelivered {
		t.Fatalf("third attempt status %q", last.Status)
	}
	ids := si.controlIDs()
	if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("control ids across retries = %v, want one id three times", ids)
	}
}

// Consecutive transient failures open the breaker; then Process reports the
// destination unavailable without sending, so the runner pauses.
func TestDeliverBreakerOpens(t *testing.T) {
	serde := newSerde(t)
	addr := freeport.For(t) // nothing listens: connection refused
	st := newStage(t, serde, deliver.MLLP{Client: &mllp.Client{Addr: addr, DialTimeout: time.Second}}, nil)
	in := envelope(t, serde, event("m3"))
	var err error
	for range 3 {
		_, err = st.Process(context.Background(), in)
	}
	if st.BreakerState() != gobreaker.StateOpen || stages.KindOf(err) != stages.KindUnavailable {
		t.Fatalf("after 3 failures: breaker %v, err kind %v; want open and unavailable", st.BreakerState(), stages.KindOf(err))
	}
	outs, err := st.Process(context.Background(), in)
	if len(outs) != 0 || stages.KindOf(err) != stages.KindUnavailable {
		t.Fatalf("with the breaker open: %d outputs, err %v; want none and unavailable", len(outs), err)
	}
	var ra stages.RetryAfter
	if !errors.As(err, &ra) || ra.RetryAfter() != time.Hour {
		t.Fatalf("unavailable error does not carry the open interval: %v", err)
	}
}

func TestDeliverHTTPStatuses(t *testing.T) {
	serde := newSerde(t)
	tests := []struct {
		status int
		want   string
		kind   stages.Kind
	}{
		{200, avro.StatusDelivered, 0},
		{202, avro.StatusDelivered, 0},
		{422, avro.StatusRejected, stages.KindPermanent},
		{429, avro.StatusRetrying, stages.KindTransient},
		{503, avro.StatusRetrying, stages.KindTransient},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body = make([]byte, r.ContentLength)
				_, _ = r.Body.Read(body)
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			st, err := deliver.New(deliver.Config{
				Destination: deliver.Destination{Name: "portal", Target: render.Target{Format: "json"},
					Connector: deliver.HTTP{Client: &httpx.Client{Timeout: 5 * time.Second}, URL: srv.URL, ContentType: "application/json"}},
				Serde: serde,
			})
			if err != nil {
				t.Fatal(err)
			}
			outs, err := st.Process(context.Background(), envelope(t, serde, event("h1")))
			o := outcomeOf(t, serde, outs)
			if o.Status != tc.want || o.HTTPStatus != tc.status || (tc.kind == 0) != (err == nil) || (err != nil && stages.KindOf(err) != tc.kind) {
				t.Fatalf("status %d: outcome %q http %d err %v", tc.status, o.Status, o.HTTPStatus, err)
			}
			if len(body) == 0 {
				t.Fatal("no JSON body was posted")
			}
		})
	}
}

// An event already delivered (a replay after a torn upstream commit) is not
// sent again.
func TestDeliverSkipsDelivered(t *testing.T) {
	serde := newSerde(t)
	si := startStandIn(t, "AA")
	dedup := stages.NewDedup(0)
	st := newStage(t, serde, deliver.MLLP{Client: &mllp.Client{Addr: si.addr}}, dedup)
	in := envelope(t, serde, event("m4"))
	if _, err := st.Process(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	dedup.Commit()
	outs, err := st.Process(context.Background(), in)
	if err != nil || len(outs) != 0 || len(si.controlIDs()) != 1 {
		t.Fatalf("replay: %d outputs, err %v, receiver got %d messages; want 0, nil, 1", len(outs), err, len(si.controlIDs()))
	}
}

// A receiver that restarted (or closed an idle connection) costs no failed
// attempt: the connector redials once before counting a failure.
func TestDeliverRedialsClosedConnection(t *testing.T) {
	serde := newSerde(t)
	si := &standIn{answers: []string{"AA"}}
	stop := si.serve(t, "127.0.0.1:0")
	st := newStage(t, serde, deliver.MLLP{Client: &mllp.Client{Addr: si.addr}}, nil)
	if _, err := st.Process(context.Background(), envelope(t, serde, event("r1"))); err != nil {
		t.Fatal(err)
	}
	stop()
	si.serve(t, si.addr)
	outs, err := st.Process(context.Background(), envelope(t, serde, event("r2")))
	if o := outcomeOf(t, serde, outs); err != nil || o.Status != avro.StatusDelivered || o.Attempt != 1 {
		t.Fatalf("after the receiver restarted: status %q attempt %d err %v; want delivered on attempt 1", o.Status, o.Attempt, err)
	}
}

// An event whose schema the registry cannot resolve (the registry may be
// down) is retried, not dead-lettered; bytes that are not Avro are.
func TestDeliverDecodeFailures(t *testing.T) {
	serde := newSerde(t)
	si := startStandIn(t, "AA")
	st := newStage(t, serde, deliver.MLLP{Client: &mllp.Client{Addr: si.addr}}, nil)
	tests := []struct {
		name  string
		value []byte
		kind  stages.Kind
		code  string
	}{
		{"unknown schema id", []byte{0, 0, 0, 0x03, 0xe7, 2, 'x'}, stages.KindTransient, stages.CodeSchemaUnavailable},
		{"not avro", []byte("MSH|^~\\&|"), stages.KindPermanent, stages.CodeDecode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.Process(context.Background(), stages.Envelope{Topic: topics.Outbound("lab"), Value: tc.value})
			code, _, _ := stages.Describe(err)
			if stages.KindOf(err) != tc.kind || code != tc.code {
				t.Fatalf("err %v: kind %v code %q, want %v %q", err, stages.KindOf(err), code, tc.kind, tc.code)
			}
		})
	}
	if len(si.controlIDs()) != 0 {
		t.Fatal("an undecodable event was sent")
	}
}
