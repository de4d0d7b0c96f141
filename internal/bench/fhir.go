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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/freeport"
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
	base := "http://" + addr + "/fhir/apps"
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
