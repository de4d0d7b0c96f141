package engine_test

// The destination rows of the fault matrix: the lab (MLLP) or the portal
// (HTTP) misbehaves while one patient's messages flow to it.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/topics"
)

// faultRun is one destination row while it runs.
type faultRun struct {
	eng     *engine.Engine
	tail    *faultTail
	lab     *faultLab
	portal  *faultPortal
	patient string   // the row's patient; its control ids are patient-k
	keys    []string // idempotency keys, in the order ingest acknowledged them
}

// labFrames returns the frames of this row's patient the lab was sent or,
// when answered, those it answered AA (each control id once).
func (r *faultRun) labFrames(answered bool) []*hl7v2.Message {
	all := r.lab.seen()
	if answered {
		all = r.lab.delivered()
	}
	var out []*hl7v2.Message
	for _, m := range all {
		if m.Get("PID-3[1].1") == r.patient {
			out = append(out, m)
		}
	}
	return out
}

// portalRequests returns the control ids of this row's requests to the
// portal, and of those it answered 2xx.
func (r *faultRun) portalRequests() (all, ok []string) {
	mine := func(ids []string) []string {
		var out []string
		for _, id := range ids {
			if strings.HasPrefix(id, r.patient+"-") {
				out = append(out, id)
			}
		}
		return out
	}
	a, o := r.portal.seen()
	return mine(a), mine(o)
}

// destRow is one destination fault.
type destRow struct {
	name string
	dest string // lab or portal
	// own runs the row on an engine of its own: the lab's listener or
	// the breaker is the fault. Other rows share one engine, each with its
	// own patient, one after another.
	own     bool
	openFor string
	labDown bool      // the lab is not listening until during starts it
	lab     labScript // n counts the row's frames
	portal  func(n int) int
	msgs    int
	// during runs once every message is acknowledged, while the fault lasts.
	during func(t *testing.T, r *faultRun)
	// final is each message's final status.
	final []string
	// retried is the code of the first message's retrying outcomes;
	// there are at least minRetries and at most maxRetries of them
	// (-1: no bound). Later messages have none.
	retried                string
	minRetries, maxRetries int
	// rejectCode is the code of rejected outcomes and their dead letters.
	rejectCode string
	// attempts is how many frames or requests of the row the stand-in saw.
	attempts int
}

// The lab (MLLP) or the portal (HTTP) misbehaves as each row names while
// one patient's messages flow to it. Every message ends with exactly one
// final outcome (delivered, or rejected and on careflow.dlq.deliver with
// the row's code); the first message's failed attempts are retrying
// outcomes with the row's code, as many as the row allows, every attempt
// at one message carrying the same outbound MSH-10; the stand-in saw
// exactly the attempts the row allows; and the patient's messages reached
// it in the order ingest acknowledged them.
func TestFaultDestination(t *testing.T) {
	aaAfter := func(k int, first labAnswer) labScript {
		return func(n int, _ *hl7v2.Message) labAnswer {
			if n <= k {
				return first
			}
			return labAnswer{}
		}
	}
	statusAfter := func(first int) func(int) int {
		return func(n int) int {
			if n == 1 {
				return first
			}
			return http.StatusOK
		}
	}
	rows := []destRow{
		{
			name: "lab down at first, then up", dest: "lab", own: true, labDown: true, msgs: 3,
			during: func(t *testing.T, r *faultRun) {
				// Connection refused until the breaker opens (its attempts'
				// outcomes commit then); the lab comes up while it is open.
				await.For(t, 10*time.Second, 10*time.Millisecond, func() error {
					r.tail.poll()
					for _, o := range r.tail.outcomes(r.keys[0]) {
						if o.Status == avro.StatusRetrying && o.ErrorCode == "mllp.connection" {
							return nil
						}
					}
					return fmt.Errorf("no refused attempt recorded yet")
				})
				r.lab.start(t)
			},
			final:   []string{avro.StatusDelivered, avro.StatusDelivered, avro.StatusDelivered},
			retried: "mllp.connection", minRetries: 3, maxRetries: -1, attempts: 3,
		},
		{
			name: "lab never answers; the breaker opens; the lab recovers", dest: "lab", own: true, msgs: 5, openFor: "2s",
			lab: func(int, *hl7v2.Message) labAnswer { return labAnswer{Silent: true} },
			during: func(t *testing.T, r *faultRun) {
				await.For(t, 15*time.Second, 10*time.Millisecond, func() error {
					m, err := faultMetrics(r.eng)
					if err != nil {
						return err
					}
					if !strings.Contains(m, `careflow_deliver_breaker_state{destination="lab"} 2`) {
						return fmt.Errorf("breaker not open")
					}
					return nil
				})
				// Open after exactly breaker.failures timeouts, all of them
				// the first message; nothing is sent while it is open.
				seen := r.labFrames(false)
				if len(seen) != 3 {
					t.Fatalf("breaker opened after %d frames, want breaker.failures = 3", len(seen))
				}
				for _, m := range seen {
					if m.Get("ORC-2.1") != seen[0].Get("ORC-2.1") {
						t.Fatalf("while failing, the lab was sent %s after %s: the head of the queue was skipped",
							m.Get("ORC-2.1"), seen[0].Get("ORC-2.1"))
					}
				}
				// Each timeout is counted once: three retrying attempts, of
				// which two were retried in place before the third opened
				// the breaker (the input then pauses, no retry).
				m, err := faultMetrics(r.eng)
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{`careflow_deliver_results_total{destination="lab",result="retrying"} 3`,
					`careflow_stage_retries_total{interface="ehr",stage="deliver"} 2`} {
					if !strings.Contains(m, want) {
						t.Errorf("metrics lack %s", want)
					}
				}
				r.lab.setScript(labAlwaysAA)
			},
			final:   slices.Repeat([]string{avro.StatusDelivered}, 5),
			retried: "mllp.timeout", minRetries: 3, maxRetries: 3, attempts: 3 + 5,
		},
		{
			name: "lab slower than ack_timeout once", dest: "lab", msgs: 2,
			lab:   aaAfter(1, labAnswer{Delay: 2 * time.Second}),
			final: []string{avro.StatusDelivered, avro.StatusDelivered},
			// The late AA of the first frame is not taken; the resend is.
			retried: "mllp.timeout", minRetries: 1, maxRetries: 1, attempts: 3,
		},
		{
			name: "lab answers garbage, then AA", dest: "lab", msgs: 2,
			lab:     aaAfter(1, labAnswer{Reply: []byte("HTTP/1.1 400 Bad Request\r\n\r\nnot hl7")}),
			final:   []string{avro.StatusDelivered, avro.StatusDelivered},
			retried: "ack.unreadable", minRetries: 1, maxRetries: 1, attempts: 3,
		},
		{
			name: "lab answers another message's control id, then AA", dest: "lab", msgs: 2,
			lab:     aaAfter(1, labAnswer{ControlID: "SOMEONE-ELSE"}),
			final:   []string{avro.StatusDelivered, avro.StatusDelivered},
			retried: "ack.control_id_mismatch", minRetries: 1, maxRetries: 1, attempts: 3,
		},
		{
			name: "lab rejects AE; the next message is still delivered", dest: "lab", msgs: 2,
			lab:        aaAfter(1, labAnswer{Code: hl7v2.AckAE}),
			final:      []string{avro.StatusRejected, avro.StatusDelivered},
			rejectCode: "ack.AE", attempts: 2,
		},
		{
			name: "lab answers AR, then AA", dest: "lab", msgs: 2,
			lab:     aaAfter(1, labAnswer{Code: hl7v2.AckAR}),
			final:   []string{avro.StatusDelivered, avro.StatusDelivered},
			retried: "ack.AR", minRetries: 1, maxRetries: 1, attempts: 3,
		},
		{
			name: "portal answers HTTP 500, then 200", dest: "portal", msgs: 2,
			portal:  statusAfter(http.StatusInternalServerError),
			final:   []string{avro.StatusDelivered, avro.StatusDelivered},
			retried: "http.500", minRetries: 1, maxRetries: 1, attempts: 3,
		},
		{
			name: "portal answers HTTP 422; the next message is still delivered", dest: "portal", msgs: 2,
			portal:     statusAfter(http.StatusUnprocessableEntity),
			final:      []string{avro.StatusRejected, avro.StatusDelivered},
			rejectCode: "http.422", attempts: 2,
		},
	}

	// The shared engine's stand-ins hand each frame or request to the
	// script of the row whose patient it is, counting per row.
	var mu sync.Mutex
	labScripts, labCount := map[string]labScript{}, map[string]int{}
	portalScripts, portalCount := map[string]func(int) int{}, map[string]int{}
	shared := newFaultEstate(t)
	sharedLab := startFaultLab(t, shared.Lab, func(_ int, m *hl7v2.Message) labAnswer {
		p := m.Get("PID-3[1].1")
		mu.Lock()
		labCount[p]++
		n, script := labCount[p], labScripts[p]
		mu.Unlock()
		if script == nil {
			return labAnswer{}
		}
		return script(n, m)
	})
	sharedPortal := startFaultPortal(t, shared.Portal, func(_ int, controlID string) int {
		p, _, _ := strings.Cut(controlID, "-")
		mu.Lock()
		portalCount[p]++
		n, script := portalCount[p], portalScripts[p]
		mu.Unlock()
		if script == nil {
			return http.StatusOK
		}
		return script(n)
	})
	sharedEng := startEngine(t, shared.config(t), t.TempDir())
	sharedTail := newFaultTail(t, sharedEng)

	for i, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r := &faultRun{patient: fmt.Sprintf("FD%d", i)}
			fe := shared
			if row.own {
				fe = newFaultEstate(t)
				if row.openFor != "" {
					fe.OpenFor = row.openFor
				}
				r.lab = newFaultLab(t, fe.Lab, row.lab)
				if !row.labDown {
					r.lab.start(t)
				}
				r.eng = startEngine(t, fe.config(t), t.TempDir())
				r.tail = newFaultTail(t, r.eng)
			} else {
				mu.Lock()
				labScripts[r.patient], portalScripts[r.patient] = row.lab, row.portal
				mu.Unlock()
				r.eng, r.tail, r.lab, r.portal = sharedEng, sharedTail, sharedLab, sharedPortal
			}
			c := &mllp.Client{Addr: fe.EHR}
			defer c.Close()
			var sent []faultSent
			for k := range row.msgs {
				id := fmt.Sprintf("%s-%d", r.patient, k)
				msg := orm(r.patient, id, "PL-"+id)
				if row.dest == "portal" {
					msg = adt("A03", r.patient, id)
				}
				faultSend(t, c, msg, "AA")
				r.keys = append(r.keys, ehrKey(id))
				sent = append(sent, faultSent{key: ehrKey(id), dests: []string{row.dest}})
			}
			if row.during != nil {
				row.during(t, r)
			}
			r.tail.settle(sent, 30*time.Second)
			checkDestinationRow(t, row, r)
		})
	}
}

// checkDestinationRow checks a settled row's outcomes, dead letters and
// what its stand-in received.
func checkDestinationRow(t *testing.T, row destRow, r *faultRun) {
	t.Helper()
	var delivered []string // control ids of delivered messages, in the order sent
	controlIDs := map[string]string{}
	for k, key := range r.keys {
		var finals, retries []avro.DeliveryOutcome
		for _, o := range r.tail.outcomes(key) {
			switch {
			case o.Stage != topics.StageDeliver || o.Destination != row.dest:
			case o.Status == avro.StatusRetrying:
				retries = append(retries, o)
			default:
				finals = append(finals, o)
			}
		}
		if len(finals) != 1 || finals[0].Status != row.final[k] {
			t.Fatalf("message %d: final outcomes %v, want exactly one %s", k, statuses(finals), row.final[k])
		}
		f := finals[0]
		controlIDs[key] = f.ControlID
		if f.Status == avro.StatusDelivered {
			delivered = append(delivered, strings.TrimPrefix(key, "EHR|HOSP|"))
		} else {
			if f.ErrorCode != row.rejectCode {
				t.Fatalf("message %d rejected with code %q, want %q", k, f.ErrorCode, row.rejectCode)
			}
			checkDeliverDeadLetter(t, r.tail, key, row.dest, row.rejectCode)
		}
		lo, hi := row.minRetries, row.maxRetries
		if k > 0 {
			lo, hi = 0, 0 // only the head of the queue meets the fault
		}
		if len(retries) < lo || hi >= 0 && len(retries) > hi {
			t.Fatalf("message %d: %d retrying outcomes, want %d..%d (-1: any)", k, len(retries), lo, hi)
		}
		for n, o := range retries {
			if o.ErrorCode != row.retried || o.Attempt != n+1 || o.ControlID != f.ControlID {
				t.Fatalf("message %d attempt %d: retrying outcome code %q attempt %d control id %q, want %q, %d, %q",
					k, n+1, o.ErrorCode, o.Attempt, o.ControlID, row.retried, n+1, f.ControlID)
			}
		}
		if f.Attempt != len(retries)+1 {
			t.Fatalf("message %d: final outcome is attempt %d after %d failed ones", k, f.Attempt, len(retries))
		}
	}

	if row.dest == "portal" {
		all, ok := r.portalRequests()
		if len(all) != row.attempts || !slices.Equal(ok, delivered) {
			t.Fatalf("portal was sent %v and accepted %v; want %d requests and %v accepted in order", all, ok, row.attempts, delivered)
		}
		return
	}
	seen := r.labFrames(false)
	if len(seen) != row.attempts {
		t.Fatalf("lab was sent %d frames, want %d", len(seen), row.attempts)
	}
	for _, m := range seen {
		// Every attempt at one message, resends included, carries the
		// control id its outcomes record.
		key := ehrKey(strings.TrimPrefix(m.Get("ORC-2.1"), "PL-"))
		if m.Get("MSH-10") != controlIDs[key] {
			t.Fatalf("lab frame for %s has MSH-10 %q, outcomes say %q", key, m.Get("MSH-10"), controlIDs[key])
		}
	}
	var got []string
	for _, m := range r.labFrames(true) {
		got = append(got, strings.TrimPrefix(m.Get("ORC-2.1"), "PL-"))
	}
	if !slices.Equal(got, delivered) {
		t.Fatalf("lab accepted %v, want %v (each once, in the order acknowledged)", got, delivered)
	}
}

// checkDeliverDeadLetter fails unless the message with idempotency key key
// is on careflow.dlq.deliver once for dest, with code in its value and
// headers and the original record's place.
func checkDeliverDeadLetter(t *testing.T, tail *faultTail, key, dest, code string) {
	t.Helper()
	var found []faultDeadLetter
	for _, d := range tail.deadLetters(topics.StageDeliver) {
		if d.header(topics.HeaderIdempotencyKey) == key {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d dead letters for %s, want 1", len(found), key)
	}
	d := found[0]
	if d.ErrorCode != code || d.header(topics.HeaderDLQCode) != code || d.Stage != topics.StageDeliver ||
		d.OriginalTopic != topics.Outbound(dest) || d.header(topics.HeaderDLQTopic) != topics.Outbound(dest) ||
		d.header(topics.HeaderDLQOffset) != fmt.Sprint(d.OriginalOffset) || len(d.OriginalValue) == 0 {
		t.Fatalf("dead letter for %s: code %q (header %q), stage %q, original %s/%s at %s, %d bytes; want %s from %s",
			key, d.ErrorCode, d.header(topics.HeaderDLQCode), d.Stage, d.OriginalTopic, d.header(topics.HeaderDLQTopic),
			d.header(topics.HeaderDLQOffset), len(d.OriginalValue), code, topics.Outbound(dest))
	}
}

func statuses(outcomes []avro.DeliveryOutcome) []string {
	var out []string
	for _, o := range outcomes {
		out = append(out, o.Status)
	}
	return out
}
