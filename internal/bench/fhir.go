// This file measures careflow's FHIR API beside HL7 v2 ingest: creates
// per second on a FHIR interface, each answered only once Kafka holds the
// raw record and the resource's version.

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/internal/load"
	"github.com/careflow-health/careflow/topics"
)

const fhirBenchYAML = `
kafka: {partitions: 6}
admin: {listen: "127.0.0.1:0"}
http: {listen: %q}
inbound:
  - {name: apps, transport: fhir}
`

// fhirPatients is how many patients the Observations name, round robin.
const fhirPatients = 100

// FHIRIngest runs the ingest stage alone on the embedded broker with one
// FHIR interface (no credentials: the token check is not what is
// measured) and returns Observation creates per second: n creates closed
// loop over conns HTTP connections, each naming one of 100 patients
// created first, each answered 201 after its two Kafka writes.
func FHIRIngest(ctx context.Context, dataDir string, conns, n int) (float64, error) {
	addr, err := freeport.Addr()
	if err != nil {
		return 0, err
	}
	cfg, err := config.Parse("fhir-bench.yaml", []byte(fmt.Sprintf(fhirBenchYAML, addr)))
	if err != nil {
		return 0, err
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	eng, err := engine.Start(ectx, engine.Options{Config: cfg, DataDir: dataDir, EmbeddedPort: -1,
		Stages: []string{topics.StageIngest}, InstanceID: "bench", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	defer func() { cancel(); _ = eng.Wait() }()
	return fhirCreates(ctx, "http://"+addr+"/fhir/apps", conns, n)
}

// fhirCreates creates 100 patients on the FHIR base, then n Observations
// closed loop over conns connections, and returns the Observations'
// creates per second (after a warm-up of 200).
func fhirCreates(ctx context.Context, base string, conns, n int) (float64, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: 30 * time.Second}
	post := func(typ string, body []byte) (string, error) {
		resp, err := client.Post(base+"/"+typ, "application/fhir+json", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("fhir bench: %s create answered %d: %.200s", typ, resp.StatusCode, b)
		}
		var r struct{ ID string }
		err = json.Unmarshal(b, &r)
		return r.ID, err
	}
	var err error
	ids := make([]string, fhirPatients)
	for i := range ids {
		if ids[i], err = post("Patient", fhirBenchPatient(i)); err != nil {
			return 0, err
		}
	}
	run := func(count int) (float64, error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		start := time.Now()
		for range conns {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= count {
						return
					}
					if _, err := post("Observation", fhirBenchObservation(ids[i%len(ids)], i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return 0, err
		}
		return float64(count) / time.Since(start).Seconds(), nil
	}
	if _, err := run(200); err != nil { // warm up: connections, producer, topics
		return 0, err
	}
	return run(n)
}

func fhirBenchPatient(i int) []byte {
	return []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:careflow:authority:HOSP","value":"B` + strconv.Itoa(i) +
		`"}],"name":[{"family":"BENCH","given":["P` + strconv.Itoa(i) + `"]}],"gender":"unknown","birthDate":"1970-01-01"}`)
}

func fhirBenchObservation(patient string, i int) []byte {
	return []byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},` +
		`"subject":{"reference":"Patient/` + patient + `"},"effectiveDateTime":"2026-12-03T10:00:00Z",` +
		`"valueQuantity":{"value":` + strconv.Itoa(60+i%40) + `,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`)
}

const fhirProcessYAML = `
kafka: {listen: %q, partitions: 6}
admin: {listen: %q}
http: {listen: %q}
inbound:
  - {name: apps, transport: fhir}
  - {name: ehr, transport: mllp, listen: %q, ack: commit}
`

// ProcessIngest is one `careflow run` process's ingest rates: FHIR
// Observation creates and HL7 v2 messages over MLLP, each closed loop
// over 8 connections, one after the other against the same process.
type ProcessIngest struct {
	FHIRCreates float64 // creates/s
	HL7v2       float64 // messages/s
}

// FHIRIngestProcess runs `careflow run` (binary, every stage, its own
// embedded broker) as its own process, as users run it, with a FHIR
// interface and an MLLP interface, and measures n FHIR creates, then n
// HL7 v2 messages from examples, each closed loop over 8 connections.
func FHIRIngestProcess(ctx context.Context, binary, examples, dataDir string, n int) (ProcessIngest, error) {
	var out ProcessIngest
	addrs := make([]string, 4)
	for i := range addrs {
		a, err := freeport.Addr()
		if err != nil {
			return out, err
		}
		addrs[i] = a
	}
	cfgPath := filepath.Join(dataDir, "careflow.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(fhirProcessYAML, addrs[0], addrs[1], addrs[2], addrs[3])), 0o600); err != nil {
		return out, err
	}
	logName := filepath.Join(dataDir, "engine.log")
	logFile, err := os.Create(logName)
	if err != nil {
		return out, err
	}
	defer logFile.Close()
	cmd := exec.Command(binary, "run", "--config", cfgPath, "--data", filepath.Join(dataDir, "engine"), "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return out, fmt.Errorf("fhir bench: start careflow run: %w", err)
	}
	defer stopProcesses([]*exec.Cmd{cmd})
	if err := waitListening(ctx, addrs[3], 60*time.Second, logName); err != nil {
		return out, err
	}
	if err := waitListening(ctx, addrs[2], 60*time.Second, logName); err != nil {
		return out, err
	}
	if out.FHIRCreates, err = fhirCreates(ctx, "http://"+addrs[2]+"/fhir/apps", 8, n); err != nil {
		return out, err
	}
	mix, err := LoadMix(examples)
	if err != nil {
		return out, err
	}
	if _, err := load.Run(ctx, load.Config{Addr: addrs[3], Count: 200, Connections: 8, Message: func(seq int) []byte { return mix.Message("W", seq) }}); err != nil {
		return out, err
	}
	res, err := load.Run(ctx, load.Config{Addr: addrs[3], Count: n, Connections: 8, Message: func(seq int) []byte { return mix.Message("P", seq) }})
	if err != nil {
		return out, err
	}
	if res.AA != res.Sent {
		return out, fmt.Errorf("fhir bench: %d of %d HL7 v2 messages not accepted", res.Sent-res.AA, res.Sent)
	}
	out.HL7v2 = res.Rate
	return out, nil
}
