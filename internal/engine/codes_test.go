package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/stages/codemap"
	"github.com/careflow-health/careflow/topics"
)

// Issue 11's code maps, end to end: a lab result with one mapped and one
// unmapped local code reaches the EHR with LOINC first and the lab's code
// as the alternate; the unmapped one goes on as sent, is an unmapped_code
// exception naming the code, system, interface and map version, and is
// counted on /metrics.
func TestCodeMapsEndToEnd(t *testing.T) {
	est := newEstate(t)
	ehr := startReceiver(t, est.EHRResults)
	startReceiver(t, est.Lab)
	startPortal(t, est.Portal)
	csv := filepath.Join(t.TempDir(), "lab-loinc.csv")
	if err := os.WriteFile(csv, []byte("local_system,local_code,code,display,system\nL,GLU,2345-7,Glucose [Mass/volume] in Serum or Plasma,LN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	table, err := codemap.Load(csv, "lab-loinc", "2024-06")
	if err != nil {
		t.Fatal(err)
	}
	cfg := est.config(t)
	cfg.Codes = []config.CodeMap{{Name: "lab-loinc", File: csv, Version: "2024-06", Interfaces: []string{"lab-results"},
		Fields: []string{codemap.FieldOBX3}, Systems: []string{"L"}, Unmapped: config.UnmappedPass, Table: table}}
	eng := startEngine(t, cfg, t.TempDir())

	lab := &mllp.Client{Addr: est.LabResults, ACKTimeout: 10 * time.Second}
	defer lab.Close()
	oru := []byte(strings.Join([]string{
		"MSH|^~\\&|LAB|LAB|EHR|HOSP|20240102030405||ORU^R01|CM-1|P|2.5.1",
		"PID|1||M1^^^HOSP^MR||DOE^JANE||19800101|F",
		"OBR|1|RP1^EHR|F1^LAB|BMP^Basic metabolic panel^L|||20240102030405||||||||||||||||F",
		"OBX|1|NM|GLU^Glucose^L||5.4|mmol/L|3.9-5.5|N|||F",
		"OBX|2|NM|XYZ^Mystery^L||1|U||N|||F",
	}, "\r") + "\r")
	if ack := send(t, lab, oru); ack.Code != hl7v2.AckAA {
		t.Fatalf("ACK %s (%s)", ack.Code, ack.Text)
	}
	obx3 := func(m *hl7v2.Message) string {
		var f []string
		for _, s := range m.SegmentsNamed("OBX") {
			f = append(f, string(s.Field(3).Raw()))
		}
		return strings.Join(f, " ")
	}
	ehr.await(t, obx3, "2345-7^Glucose [Mass/volume] in Serum or Plasma^LN^GLU^Glucose^L XYZ^Mystery^L")

	// Both exceptions were committed before the delivery: normalise's
	// unmapped_code and route's result_for_unknown_order (the estate
	// never saw order RP1).
	var unmapped []avro.Exception
	for _, r := range readTopic(t, eng.Brokers(), topics.Exceptions, 2, 20*time.Second) {
		var x avro.Exception
		if err := eng.Serde().Decode(r.Value, &x); err != nil {
			t.Fatal(err)
		}
		if x.Code == "unmapped_code" {
			unmapped = append(unmapped, x)
		}
	}
	if len(unmapped) != 1 {
		t.Fatalf("%d unmapped_code exceptions, want 1: %+v", len(unmapped), unmapped)
	}
	x := unmapped[0]
	if x.Code != "unmapped_code" || x.Location != "OBX-3" || x.CodedValue != "XYZ" || x.CodingSystem != "L" ||
		x.Interface != "lab-results" || x.ControlID != "CM-1" || x.Action != avro.ActionDelivered ||
		!strings.Contains(x.Reason, "lab-loinc (version 2024-06)") || strings.Contains(x.Reason, "DOE") {
		t.Errorf("exception %+v", x)
	}
	// The event records the map's version it was read against.
	evs := readTopic(t, eng.Brokers(), topics.Events, 1, 20*time.Second)
	var ev avro.ClinicalEvent
	if err := eng.Serde().Decode(evs[0].Value, &ev); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ev.Provenance.CodeMaps, ",") != "lab-loinc@2024-06" {
		t.Errorf("event code_maps %v", ev.Provenance.CodeMaps)
	}
	await.For(t, 10*time.Second, 50*time.Millisecond, func() error {
		page, err := faultMetrics(eng)
		if err != nil {
			return err
		}
		for _, want := range []string{
			`careflow_unmapped_codes_total{interface="lab-results",map="lab-loinc"} 1`,
			`careflow_exceptions_total{code="unmapped_code"} 1`,
		} {
			if !strings.Contains(page, want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
		}
		return nil
	})
}
