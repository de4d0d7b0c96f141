package stages_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// An error's Detail (a destination's own words, which name the patient)
// reaches the dead letter's ErrorDetail, cut to avro.MaxErrorDetail on a
// character boundary, and nothing else: no header of any record, no
// log line at any level, not the dead letter's ErrorText.
func TestRunnerKeepsErrorDetailInDeadLetterValueOnly(t *testing.T) {
	const name, id = "SMITH^JOHN", "NHS9434765919"
	detail := "MSA-3: Patient " + name + " (" + id + ") unknown \xff; ERR PID-5: " + strings.Repeat("é", avro.MaxErrorDetail)
	h := newHarness(t, 1)
	h.produce([]string{"k"}, []string{"rejected", "flaky", "good"})
	var flaky atomic.Int32
	proc := stages.ProcessorFunc(func(ctx context.Context, in stages.Envelope) ([]stages.Envelope, error) {
		switch string(in.Value) {
		case "rejected":
			return nil, stages.WithDetail(stages.Permanent("ack.AE", "PID-5", errors.New("destination lab answered AE")), detail)
		case "flaky":
			// Fails past the hold limit twice, so the runner logs it.
			if flaky.Add(1) <= 8 {
				return nil, stages.WithDetail(stages.Transient("ack.AR", errors.New("destination lab answered AR")), detail)
			}
		}
		return copyTo(outTopic)(ctx, in)
	})
	var logs bytes.Buffer // the handler serialises writes; read once the runner has stopped
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stop := h.run(stages.RunnerConfig{Processor: proc, Logger: log, HoldLimit: 30 * time.Millisecond})
	out := h.consume(outTopic, 2, 20*time.Second)
	dlq := h.consume(topics.DeadLetter("test"), 1, 10*time.Second)
	stop()
	if len(out) != 2 || len(dlq) != 1 {
		t.Fatalf("%d outputs and %d dead letters, want 2 and 1", len(out), len(dlq))
	}
	clean := func(where, s string) {
		t.Helper()
		for _, p := range []string{name, id, "SMITH", "9434765919"} {
			if strings.Contains(s, p) {
				t.Errorf("%s holds the destination's text (%q)", where, p)
			}
		}
	}
	for _, rec := range append(out, dlq...) {
		for _, x := range rec.Headers {
			clean(rec.Topic+" header "+x.Key, string(x.Value))
		}
	}
	var dl avro.DeadLetter
	if err := h.serde.Decode(dlq[0].Value, &dl); err != nil {
		t.Fatal(err)
	}
	clean("dead letter error_text", dl.ErrorText+" "+dl.ErrorCode+" "+dl.ErrorLocation)
	valid := strings.ToValidUTF8(detail, "\uFFFD")
	if d := dl.ErrorDetail; !utf8.ValidString(d) || len(d) > avro.MaxErrorDetail || len(d) <= avro.MaxErrorDetail-utf8.UTFMax ||
		!strings.HasPrefix(valid, d) || !strings.Contains(d, id) {
		t.Fatalf("error_detail of %d bytes (valid UTF-8 %v), want the detail's first %d bytes on a character boundary: %.80q",
			len(d), utf8.ValidString(d), avro.MaxErrorDetail, d)
	}
	if dl.ErrorText != "destination lab answered AE" || dl.ErrorCode != "ack.AE" || dl.ErrorLocation != "PID-5" {
		t.Fatalf("dead letter says %q %q %q", dl.ErrorCode, dl.ErrorLocation, dl.ErrorText)
	}
	all := logs.String()
	clean("log output", all)
	if !strings.Contains(all, "record still failing") || !strings.Contains(all, "code=ack.AR") {
		t.Fatalf("the runner did not log the failing record (the line this test guards):\n%s", all)
	}
}
