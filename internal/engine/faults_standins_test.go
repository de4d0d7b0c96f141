package engine_test

// The scripted stand-ins of the fault-matrix tests: a lab (an MLLP
// mllp.Server) and a portal (an httptest server) that answer each message
// as a fault says and record everything they were sent.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
)

// labAnswer is how the scripted lab answers one frame. The zero value
// answers AA.
type labAnswer struct {
	Code      hl7v2.AckCode // AA, AE, AR; "" is AA
	Reply     []byte        // sent instead of an ACK (garbage)
	Delay     time.Duration // answer this much later (a slow lab)
	Silent    bool          // never answer
	ControlID string        // MSA-2 to answer with instead of the frame's MSH-10
	Errors    []hl7v2.AckError
}

// labScript chooses the answer to frame n (counted from 1 over every
// connection).
type labScript func(n int, m *hl7v2.Message) labAnswer

func labAlwaysAA(int, *hl7v2.Message) labAnswer { return labAnswer{} }

// faultLab is an MLLP destination stand-in (an mllp.Server) answering as
// its script says and recording every frame it was sent.
type faultLab struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	script   labScript
	frames   []*hl7v2.Message // every frame, in arrival order
	answered []*hl7v2.Message // frames answered AA for their own MSH-10 (written, or tried to be)

	stop context.CancelFunc
	done chan struct{}
}

// newFaultLab makes a lab on addr that is not listening yet (start);
// a nil script answers AA.
func newFaultLab(t *testing.T, addr string, script labScript) *faultLab {
	t.Helper()
	if script == nil {
		script = labAlwaysAA
	}
	l := &faultLab{t: t, addr: addr, script: script}
	t.Cleanup(l.close)
	return l
}

// startFaultLab makes a lab on addr and starts it.
func startFaultLab(t *testing.T, addr string, script labScript) *faultLab {
	t.Helper()
	l := newFaultLab(t, addr, script)
	l.start(t)
	return l
}

// start listens on the lab's address (once the port is free again) and
// serves until the test ends.
func (l *faultLab) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	await.For(t, 5*time.Second, 20*time.Millisecond, func() error {
		var err error
		ln, err = net.Listen("tcp", l.addr)
		return err
	})
	srv := &mllp.Server{Handler: mllp.HandlerFunc(l.serve)}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop, l.done = cancel, make(chan struct{})
	go func() { defer close(l.done); _ = srv.Serve(ctx, ln) }()
}

func (l *faultLab) serve(ctx context.Context, req mllp.Request) []byte {
	m, err := hl7v2.Parse(append([]byte(nil), req.Payload...))
	if err != nil {
		// careflow sent something that is not HL7: no fault explains that.
		l.t.Errorf("lab stand-in got unparseable HL7: %v", err)
		return nil
	}
	l.mu.Lock()
	l.frames = append(l.frames, m)
	n, script := len(l.frames), l.script
	l.mu.Unlock()
	a := script(n, m)
	if a.Delay > 0 {
		// The lab being slow is the fault under test, not a wait.
		select {
		case <-time.After(a.Delay):
		case <-ctx.Done():
			return nil
		}
	}
	switch {
	case a.Silent:
		return nil
	case a.Reply != nil:
		return a.Reply
	}
	code := a.Code
	if code == "" {
		code = hl7v2.AckAA
	}
	h := m.Header()
	if a.ControlID != "" {
		h.ControlID = a.ControlID
	}
	if code == hl7v2.AckAA && a.ControlID == "" {
		l.mu.Lock()
		l.answered = append(l.answered, m)
		l.mu.Unlock()
	}
	return hl7v2.BuildACK(h, m.Delimiters(), code, hl7v2.ACKOptions{Now: time.Now(), Text: "lab says " + string(code), Errors: a.Errors})
}

// setScript changes how the lab answers from the next frame on.
func (l *faultLab) setScript(s labScript) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.script = s
}

func (l *faultLab) close() {
	if l.stop != nil {
		l.stop()
		<-l.done
		l.stop = nil
	}
}

// seen returns every frame the lab was sent.
func (l *faultLab) seen() []*hl7v2.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.frames)
}

// delivered returns the frames the lab answered AA, each outbound control
// id once (a resend of one it already answered is dropped, as a receiver
// deduplicating on MSH-10 would), in the order first answered.
func (l *faultLab) delivered() []*hl7v2.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	var out []*hl7v2.Message
	for _, m := range l.answered {
		if id := m.Get("MSH-10"); !seen[id] {
			seen[id] = true
			out = append(out, m)
		}
	}
	return out
}

// portalScript chooses the status for request n (counted from 1), which
// carries the inbound message controlID.
type portalScript func(n int, controlID string) int

// faultPortal is an HTTP destination stand-in answering each request with
// the status its script gives, recording each request's inbound control id
// (provenance.control_id of careflow's JSON).
type faultPortal struct {
	mu       sync.Mutex
	script   portalScript
	requests []string // every request, in arrival order
	ok       []string // requests answered 2xx
}

func startFaultPortal(t *testing.T, addr string, script portalScript) *faultPortal {
	t.Helper()
	p := &faultPortal{script: script}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var doc struct {
			Provenance struct {
				ControlID string `json:"control_id"`
			} `json:"provenance"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.requests = append(p.requests, doc.Provenance.ControlID)
		status := p.script(len(p.requests), doc.Provenance.ControlID)
		if status/100 == 2 {
			p.ok = append(p.ok, doc.Provenance.ControlID)
		}
		p.mu.Unlock()
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "portal says %d", status)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

func (p *faultPortal) seen() (all, ok []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests), slices.Clone(p.ok)
}
