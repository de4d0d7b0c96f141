package validate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

var testNow = time.Date(2024, 3, 1, 12, 0, 1, 0, time.UTC)

func newSerde(t testing.TB) *avro.Serde {
	t.Helper()
	s, err := avro.NewSerde(context.Background(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testRules is the configuration the table runs against.
var testRules = map[string]Rules{
	"ehr": {
		MessageTypes: []string{"ADT^A01", "ADT^A04", "ORU^*", "MFN^M02"},
		Versions:     []string{"2.3", "2.5.1"},
		Required: map[string][]string{
			"ADT^*": {"EVN", "PID-7", "PV1-3.1"},
			"ORU":   {"OBR", "OBX-3"},
		},
	},
	"lab": {}, // accepts anything well formed
}

type fixture struct {
	serde *avro.Serde
	stage *Stage
	reg   *prometheus.Registry
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	serde := newSerde(t)
	reg := prometheus.NewRegistry()
	st, err := New(Config{Interfaces: testRules, Serde: serde, Now: func() time.Time { return testNow }, Dedup: NewMemoryDedup(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{serde: serde, stage: st, reg: reg}
}

func load(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(strings.TrimRight(string(b), "\n"), "\n", "\r")
}

// envelope wraps payload as ingest would: a RawMessage on careflow.raw.
func (f fixture) envelope(t testing.TB, iface, idem, payload string) stages.Envelope {
	t.Helper()
	raw := avro.RawMessage{
		MessageID: "m-" + idem, CorrelationID: "c-" + idem, IdempotencyKey: idem,
		Interface: iface, Transport: "mllp", ReceivedAt: testNow.Add(-time.Second),
		Payload: []byte(payload), MessageType: "ADT", TriggerEvent: "A01",
	}
	b, err := f.serde.Encode(&raw)
	if err != nil {
		t.Fatal(err)
	}
	var h stages.Headers
	h.Set(topics.HeaderMessageID, raw.MessageID)
	h.Set(topics.HeaderCorrelationID, raw.CorrelationID)
	h.Set(topics.HeaderIdempotencyKey, idem)
	h.Set(topics.HeaderInterface, iface)
	h.Set(topics.HeaderIngestTime, raw.ReceivedAt.Format(topics.TimeFormat))
	return stages.Envelope{Topic: topics.Raw, Key: []byte("100234^NORTHSIDE"), Value: b, Headers: h, Partition: 3, Offset: 42}
}

func TestProcessRules(t *testing.T) {
	adt := load(t, "adt_a01.hl7")
	oru := load(t, "oru_r01.hl7")
	tests := []struct {
		name     string
		iface    string
		payload  string
		value    []byte // overrides the encoded RawMessage
		wantCode string // "" = valid
		wantLoc  string
		wantText string
	}{
		{name: "valid ADT", iface: "ehr", payload: adt},
		{name: "valid ORU any trigger", iface: "ehr", payload: oru},
		{name: "interface without rules accepts anything", iface: "lab", payload: strings.Replace(adt, "|2.5.1", "|2.2", 1)},
		{name: "non-patient type needs no PID", iface: "ehr", payload: "MSH|^~\\&|MDM|X|Y|Z|20240101||MFN^M02|1|P|2.5.1\rMFI|PRA"},
		{name: "undecodable value", iface: "ehr", value: []byte("not avro"), wantCode: CodeDecode},
		{name: "not HL7", iface: "ehr", payload: "hello", wantCode: "hl7.no_msh", wantLoc: "segment 1"},
		{name: "bad encoding characters", iface: "ehr", payload: "MSH|^^\\&|A", wantCode: "hl7.bad_encoding", wantLoc: "MSH-2"},
		{name: "unknown interface", iface: "pharmacy", payload: adt, wantCode: CodeUnknownInterface, wantText: `"pharmacy"`},
		{name: "message type not accepted", iface: "ehr", payload: strings.Replace(adt, "ADT^A01^ADT_A01", "SIU^S12", 1), wantCode: CodeMessageType, wantLoc: "MSH-9.1", wantText: "SIU^S12"},
		{name: "trigger not accepted", iface: "ehr", payload: strings.Replace(adt, "ADT^A01^ADT_A01", "ADT^A08^ADT_A01", 1), wantCode: CodeMessageType, wantLoc: "MSH-9.2", wantText: "ADT^A08"},
		{name: "version not accepted", iface: "ehr", payload: strings.Replace(adt, "|2.5.1", "|2.4", 1), wantCode: CodeVersion, wantLoc: "MSH-12", wantText: `"2.4"`},
		{name: "required segment missing", iface: "ehr", payload: strings.Replace(adt, "EVN|A01|20240301115500\r", "", 1), wantCode: CodeRequired, wantLoc: "EVN"},
		{name: "first missing reported, all listed", iface: "ehr", payload: strings.Replace(strings.Replace(adt, "|19800214|", "||", 1), "WARD7^R12", "^R12", 1), wantCode: CodeRequired, wantLoc: "PID-7", wantText: "PID-7, PV1-3.1"},
		{name: "delimiters only are empty", iface: "ehr", payload: strings.Replace(adt, "WARD7^R12^B3^NORTHSIDE", "^^^", 1), wantCode: CodeRequired, wantLoc: "PV1-3.1"},
		{name: "explicit null is empty", iface: "ehr", payload: strings.Replace(adt, "|19800214|", `|""|`, 1), wantCode: CodeRequired, wantLoc: "PID-7"},
		{name: "required segment for ORU", iface: "ehr", payload: strings.Replace(oru, "OBR|1|PLC200^CPOE|FIL900^LAB|24331-1^Lipid panel^LN\r", "", 1), wantCode: CodeRequired, wantLoc: "OBR"},
		{name: "no patient identifier", iface: "ehr", payload: strings.Replace(adt, "100234^^^NORTHSIDE^MR", "^^^NORTHSIDE^MR", 1), wantCode: CodeRequired, wantLoc: "PID-3"},
		{name: "no PID at all", iface: "lab", payload: strings.Replace(oru, "PID|1||100234^^^NORTHSIDE^MR||Testperson^Alex||19800214|F\r", "", 1), wantCode: CodeRequired, wantLoc: "PID-3"},
		{name: "second identifier suffices", iface: "lab", payload: strings.Replace(adt, "100234^^^NORTHSIDE^MR", "^^^NORTHSIDE^MR~555^^^NHS^NH", 1)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			in := f.envelope(t, tc.iface, fmt.Sprintf("k%d", i), tc.payload)
			if tc.value != nil {
				in.Value = tc.value
			}
			out, err := f.stage.Process(context.Background(), in)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Process: %v", err)
				}
				if len(out) != 1 || out[0].Topic != topics.Valid {
					t.Fatalf("got %d outputs %v, want one on %s", len(out), topicsOf(out), topics.Valid)
				}
				if string(out[0].Value) != string(in.Value) || string(out[0].Key) != string(in.Key) {
					t.Error("valid record must forward key and value unchanged")
				}
				if got := out[0].Headers.Get(topics.StageTime(topics.StageValidate)); got != testNow.Format(topics.TimeFormat) {
					t.Errorf("stage time header = %q", got)
				}
				if got := out[0].Headers.Get(topics.HeaderMessageID); got != in.Headers.Get(topics.HeaderMessageID) {
					t.Errorf("message id header = %q, want it kept", got)
				}
				return
			}
			var se *stages.Error
			if !errors.As(err, &se) || se.Kind != stages.KindPermanent {
				t.Fatalf("err = %v, want a permanent error", err)
			}
			if se.Code != tc.wantCode || se.Location != tc.wantLoc {
				t.Errorf("error code/location = %s/%s, want %s/%s", se.Code, se.Location, tc.wantCode, tc.wantLoc)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not mention %q", err, tc.wantText)
			}
			o := f.onlyOutcome(t, in, out)
			if o.Status != avro.StatusInvalid || o.ErrorCode != tc.wantCode || o.ErrorLocation != tc.wantLoc {
				t.Errorf("outcome status/code/location = %s/%s/%s", o.Status, o.ErrorCode, o.ErrorLocation)
			}
			if o.OutcomeID != in.Headers.Get(topics.HeaderMessageID)+"/validate/invalid" {
				t.Errorf("outcome id = %q", o.OutcomeID)
			}
			if o.ErrorText == "" || !strings.Contains(o.ErrorText, tc.wantText) {
				t.Errorf("outcome text = %q, want it to mention %q", o.ErrorText, tc.wantText)
			}
			if strings.Contains(err.Error(), "Testperson") || strings.Contains(err.Error(), "100234") {
				t.Errorf("error leaks patient data: %v", err)
			}
		})
	}
}

func topicsOf(out []stages.Envelope) []string {
	var s []string
	for _, e := range out {
		s = append(s, e.Topic)
	}
	return s
}

// onlyOutcome asserts out is one DeliveryOutcome keyed like in and decodes
// it, checking the identity fields every outcome carries.
func (f fixture) onlyOutcome(t *testing.T, in stages.Envelope, out []stages.Envelope) avro.DeliveryOutcome {
	t.Helper()
	if len(out) != 1 || out[0].Topic != topics.Outcomes {
		t.Fatalf("got outputs %v, want one on %s", topicsOf(out), topics.Outcomes)
	}
	if string(out[0].Key) != string(in.Key) {
		t.Errorf("outcome key = %q, want the input's", out[0].Key)
	}
	var o avro.DeliveryOutcome
	if err := f.serde.Decode(out[0].Value, &o); err != nil {
		t.Fatal(err)
	}
	h := in.Headers
	if o.Stage != topics.StageValidate || o.MessageID != h.Get(topics.HeaderMessageID) ||
		o.CorrelationID != h.Get(topics.HeaderCorrelationID) || o.IdempotencyKey != h.Get(topics.HeaderIdempotencyKey) ||
		o.Interface != h.Get(topics.HeaderInterface) {
		t.Errorf("outcome identity = %+v, want the input's", o)
	}
	if !o.At.Equal(testNow) || !o.IngestTime.Equal(testNow.Add(-time.Second)) {
		t.Errorf("outcome at/ingest = %v/%v", o.At, o.IngestTime)
	}
	return o
}

func TestDuplicate(t *testing.T) {
	f := newFixture(t)
	adt := load(t, "adt_a01.hl7")
	in := f.envelope(t, "ehr", "EPIC|NORTHSIDE|MSG00001", adt)

	if out, err := f.stage.Process(context.Background(), in); err != nil || len(out) != 1 || out[0].Topic != topics.Valid {
		t.Fatalf("first: %v %v", topicsOf(out), err)
	}
	out, err := f.stage.Process(context.Background(), in)
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	o := f.onlyOutcome(t, in, out)
	if o.Status != avro.StatusDuplicate || o.OutcomeID != "m-EPIC|NORTHSIDE|MSG00001/validate/duplicate" || o.ErrorCode != "" {
		t.Errorf("duplicate outcome = %+v", o)
	}
	if o.MessageType != "ADT" || o.TriggerEvent != "A01" {
		t.Errorf("duplicate outcome type = %s^%s", o.MessageType, o.TriggerEvent)
	}

	// Dedup state is per partition.
	other := in
	other.Partition = 4
	if out, err := f.stage.Process(context.Background(), other); err != nil || len(out) != 1 || out[0].Topic != topics.Valid {
		t.Fatalf("other partition: %v %v", topicsOf(out), err)
	}

	// An invalid message never enters the set: its corrected resend passes.
	bad := f.envelope(t, "ehr", "k-bad", strings.Replace(adt, "|19800214|", "||", 1))
	if _, err := f.stage.Process(context.Background(), bad); err == nil {
		t.Fatal("invalid message passed")
	}
	good := f.envelope(t, "ehr", "k-bad", adt)
	if out, err := f.stage.Process(context.Background(), good); err != nil || out[0].Topic != topics.Valid {
		t.Fatalf("corrected resend: %v %v", topicsOf(out), err)
	}

	if _, err := f.stage.Process(context.Background(), stages.Envelope{Value: []byte("junk")}); err == nil {
		t.Fatal("junk passed")
	}
	if got := testutil.ToFloat64(f.stage.total.WithLabelValues("unknown", "invalid")); got != 1 {
		t.Errorf("undecodable records counted %v times, want 1", got)
	}
	for _, c := range []struct {
		result string
		want   float64
	}{{"valid", 3}, {"duplicate", 1}, {"invalid", 1}} {
		if got := testutil.ToFloat64(f.stage.total.WithLabelValues("ehr", c.result)); got != c.want {
			t.Errorf("careflow_validate_total{interface=ehr,result=%s} = %v, want %v", c.result, got, c.want)
		}
	}
	if n, err := testutil.GatherAndCount(f.reg, "careflow_validate_total"); err != nil || n != 4 {
		t.Errorf("registry has %d series (%v), want 4", n, err)
	}
}

func TestKeyFromRecordWhenHeaderMissing(t *testing.T) {
	f := newFixture(t)
	in := f.envelope(t, "ehr", "k-raw", load(t, "adt_a01.hl7"))
	in.Headers = stages.Headers{{Key: topics.HeaderMessageID, Value: []byte("m-k-raw")}}
	out, err := f.stage.Process(context.Background(), in)
	if err != nil || len(out) != 1 {
		t.Fatalf("Process: %v", err)
	}
	if got := out[0].Headers.Get(topics.HeaderIdempotencyKey); got != "k-raw" {
		t.Errorf("idempotency header on %s = %q, want the record's key", topics.Valid, got)
	}
	if out, err := f.stage.Process(context.Background(), in); err != nil || out[0].Topic != topics.Outcomes {
		t.Errorf("resend without header not caught: %v %v", topicsOf(out), err)
	}
}

func TestUnknownSchemaIsTransient(t *testing.T) {
	f := newFixture(t)
	in := f.envelope(t, "ehr", "k", load(t, "adt_a01.hl7"))
	in.Value = append([]byte{0, 0, 0, 0x03, 0xe7}, in.Value[5:]...) // schema id 999
	out, err := f.stage.Process(context.Background(), in)
	if stages.KindOf(err) != stages.KindTransient || len(out) != 0 {
		t.Fatalf("got %v, %v; want a transient error and no output", topicsOf(out), err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	serde := newSerde(t)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no serde", Config{Dedup: NewMemoryDedup()}, "Serde"},
		{"no dedup", Config{Serde: serde}, "Dedup"},
		{"bad type pattern", Config{Serde: serde, Dedup: NewMemoryDedup(), Interfaces: map[string]Rules{"ehr": {MessageTypes: []string{"ADT^A01^X"}}}}, "interface ehr"},
		{"trigger without type", Config{Serde: serde, Dedup: NewMemoryDedup(), Interfaces: map[string]Rules{"ehr": {MessageTypes: []string{"*^A01"}}}}, "needs a message type"},
		{"bad required path", Config{Serde: serde, Dedup: NewMemoryDedup(), Interfaces: map[string]Rules{"ehr": {Required: map[string][]string{"ADT": {"PID.3"}}}}}, `"PID.3"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error mentioning %s", err, tc.want)
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	f := newFixture(b)
	in := f.envelope(b, "ehr", "k", load(b, "adt_a01.hl7"))
	f.stage.dedup = noDedup{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.stage.Process(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// noDedup lets a benchmark process one record repeatedly.
type noDedup struct{}

func (noDedup) Seen(int32, string) bool { return false }
func (noDedup) Add(int32, string)       {}

// testRegistry is careflow's own schema registry, in a temporary folder.
func testRegistry(t testing.TB) *registry.Store {
	t.Helper()
	reg, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// A message that breaks its interface's rules and asked for an application
// acknowledgement (enhanced mode) gets it on the interface's reply_to
// destination, beside the invalid outcome: AE for a content error, AR for a
// type the interface does not take, MSA-2 its MSH-10, the rule's ERR. An
// original-mode message, an enhanced one with MSH-16 NE, or an interface
// without reply_to get none (their ACK from ingest said it all).
func TestApplicationACKForInvalid(t *testing.T) {
	serde := newSerde(t)
	stage := func(replyTo map[string]string) *Stage {
		st, err := New(Config{Interfaces: testRules, Serde: serde, Now: func() time.Time { return testNow }, Dedup: NewMemoryDedup(), ReplyTo: replyTo})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	f := fixture{serde: serde}
	msg := func(typ, msh16 string) string {
		return "MSH|^~\\&|EHR|HOSP|CF|HOSP|20240301120000||" + typ + "|CTRL-" + msh16 + "|P|2.5.1|||" + map[bool]string{true: "AL", false: ""}[msh16 != ""] + "|" + msh16 +
			"\rEVN|A01|20240301120000\rPID|1||100234^^^NORTHSIDE^MR||DOE^JANE\rPV1|1|I|WARD1"
	}
	tests := []struct {
		name, iface, payload string
		want                 string // MSA-1/ERR code/location, "" for no ACK
	}{
		{"AL, missing PID-7", "ehr", msg("ADT^A01", "AL"), "AE/101/PID-7/CTRL-AL"},
		{"ER, missing PID-7", "ehr", msg("ADT^A01", "ER"), "AE/101/PID-7/CTRL-ER"},
		{"AL, trigger not taken", "ehr", msg("ADT^A08", "AL"), "AR/201/MSH-9.2/CTRL-AL"},
		{"NE", "ehr", msg("ADT^A01", "NE"), ""},
		{"original mode", "ehr", msg("ADT^A01", ""), ""},
		{"no reply_to", "no-reply", msg("ADT^A01", "AL"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			replyTo := map[string]string{"ehr": "ehr-notifications"}
			if tc.iface == "no-reply" {
				replyTo = nil
			}
			outs, err := stage(replyTo).Process(context.Background(), f.envelope(t, "ehr", tc.name, tc.payload))
			var acks []stages.Envelope
			for _, o := range outs {
				if o.Topic == topics.Outbound("ehr-notifications") {
					acks = append(acks, o)
				}
			}
			if tc.want == "" {
				if len(acks) != 0 {
					t.Errorf("%d application ACKs, want none", len(acks))
				}
				return
			}
			if stages.KindOf(err) != stages.KindPermanent || len(acks) != 1 {
				t.Fatalf("err %v, %d application ACKs; want a permanent error and one ACK", err, len(acks))
			}
			var ev avro.ClinicalEvent
			if err := serde.Decode(acks[0].Value, &ev); err != nil {
				t.Fatal(err)
			}
			a := ev.Acknowledgment
			if ev.MessageType != "ACK" || a == nil || len(a.Errors) != 1 {
				t.Fatalf("ACK event %+v", ev)
			}
			if got := a.Code + "/" + a.Errors[0].Code + "/" + a.Errors[0].Location + "/" + a.ControlID; got != tc.want {
				t.Errorf("ACK %s, want %s", got, tc.want)
			}
		})
	}
}
