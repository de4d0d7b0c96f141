package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/topics"
)

const corpusDir = "../../connectors/hl7v2/testdata/corpus"

type corpusCase struct {
	file string
	ok   bool
	code string
}

func loadCorpus(t *testing.T) []corpusCase {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "EXPECT"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []corpusCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) < 3 {
			t.Fatalf("EXPECT line %q", line)
		}
		cases = append(cases, corpusCase{file: fs[0], ok: fs[1] == "ok", code: fs[2]})
	}
	if len(cases) < 40 {
		t.Fatalf("corpus has %d cases, want at least 40", len(cases))
	}
	return cases
}

// Real-world-shaped messages from every HL7 v2 version, with vendor quirks
// and malformed ones, sent over MLLP as a sender would: each parseable one
// is acknowledged after it is stored, AA (CA in enhanced mode, whose commit
// ACK means stored) when the interface's rules take it, AR/AE naming the
// rule and a validate dead letter when not; each
// unparseable one gets AR/CR and lands in the ingest dead-letter topic;
// nothing stalls the engine.
func TestCorpusThroughEngine(t *testing.T) {
	est := newEstate(t)
	startReceiver(t, est.Lab)
	startReceiver(t, est.EHRResults)
	startPortal(t, est.Portal)
	eng := startEngine(t, est.config(t), t.TempDir())
	c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
	defer c.Close()
	rejected, invalid := 0, 0
	for _, tc := range loadCorpus(t) {
		data, err := os.ReadFile(filepath.Join(corpusDir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var reply []byte
		if bytes.ContainsAny(data, "\x0b\x1c") {
			// MLLP cannot carry its own framing bytes (a receiver would cut
			// the frame there), so such input goes over HTTP.
			reply = postHL7(t, eng.HTTPAddr(), "ehr", data)
		} else if reply, err = c.Send(context.Background(), data); err != nil {
			t.Fatalf("%s: no reply: %v", tc.file, err)
		}
		ack, err := hl7v2.ParseACK(reply)
		if err != nil {
			t.Fatalf("%s: reply is not an ACK: %v\n%q", tc.file, err, reply)
		}
		accepted := ack.Code == hl7v2.AckAA || ack.Code == hl7v2.AckCA
		if tc.ok && !refusedAtIngest[tc.file] && (ack.Code == hl7v2.AckAE || ack.Code == hl7v2.AckAR) && len(ack.Errors) > 0 && ruleCodes[ack.Errors[0].Code] {
			// Stored, but the ehr interface's rules do not take it (ack:
			// validated): the ERR says which rule, and validate keeps it
			// as a dead letter.
			if ack.Errors[0].Location == "" {
				t.Errorf("%s: %s without an ERR location", tc.file, ack.Code)
			}
			invalid++
			accepted = true
		}
		if refusedAtIngest[tc.file] {
			// Parseable, but careflow does not take it (issue 8).
			tc.ok = false
		}
		if tc.ok != accepted {
			t.Errorf("%s: answered %s (%s), want accepted=%v", tc.file, ack.Code, ack.Text, tc.ok)
		}
		if !tc.ok {
			rejected++
			if ack.Code != hl7v2.AckAR && ack.Code != hl7v2.AckCR {
				t.Errorf("%s: rejected with %s, want AR or CR", tc.file, ack.Code)
			}
			if len(ack.Errors) == 0 {
				t.Errorf("%s: rejection has no ERR segment", tc.file)
			}
		}
	}
	// The engine still serves a good message after all that.
	if ack := send(t, c, adt("A01", "AFTER", "AFTER1")); ack.Code != hl7v2.AckAA {
		t.Fatalf("after the corpus, a good message got %s", ack.Code)
	}
	dl := readTopic(t, eng.Brokers(), topics.DeadLetter(topics.StageIngest), rejected, 15*time.Second)
	if len(dl) != rejected {
		t.Fatalf("%d rejected messages but %d ingest dead letters: a rejected message was lost", rejected, len(dl))
	}
	if invalid == 0 {
		t.Fatal("no corpus message failed the ehr interface's rules; the AE path went untested")
	}
	// At least one validate dead letter per AE/AR: more when an
	// enhanced-mode message failed the rules (its commit ACK says CA,
	// stored; the rules' verdict is the application's).
	if vd := readTopic(t, eng.Brokers(), topics.DeadLetter(topics.StageValidate), invalid, 20*time.Second); len(vd) < invalid {
		t.Fatalf("%d messages answered AE/AR for a rule but %d validate dead letters: an answered message was lost", invalid, len(vd))
	}
}

// ruleCodes are the HL7 table 0357 codes of the accept rules (unsupported
// type, event, version; a required field or segment missing), as opposed to
// the parse errors ingest refuses outright.
var ruleCodes = map[string]bool{"200": true, "201": true, "203": true, "101": true, "100": true}

// refusedAtIngest are corpus messages the parser reads but ingest refuses:
// without MSH-10 a sender cannot match the ACK to the message, and a resend
// cannot be recognised.
var refusedAtIngest = map[string]bool{"adt_a01_noversion_short_msh.hl7": true}

func postHL7(t *testing.T, addr, iface string, data []byte) []byte {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/hl7/"+iface, "x-application/hl7-v2+er7", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}
