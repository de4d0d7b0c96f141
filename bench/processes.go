package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"careflow/avro/registry"
	"careflow/bench/load"
	"careflow/topics"
	"careflow/topics/kafka"
)

// demoAddrs are the demo configuration's listen and destination addresses,
// which EndToEndProcesses moves to free ports.
var demoAddrs = []string{"127.0.0.1:2575", "127.0.0.1:2576", "127.0.0.1:6661", "127.0.0.1:6662", "127.0.0.1:6663", "127.0.0.1:9464", "127.0.0.1:8080"}

// EndToEndProcesses is EndToEnd with each stage as its own process: the
// careflow binary runs `careflow stage NAME` once per stage (copies times
// for every stage but ingest, which owns the listening port), against the
// embedded broker and a schema registry served from this process, with
// the same stand-in destinations. It returns messages per second from the
// first of n sends to the last acknowledged delivery.
func EndToEndProcesses(ctx context.Context, binary, cfgPath, examples, dataDir string, n, copies int) (float64, error) {
	mix, err := LoadMix(examples)
	if err != nil {
		return 0, err
	}
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{DataDir: filepath.Join(dataDir, "kafka"), Port: -1})
	if err != nil {
		return 0, err
	}
	defer b.Close()
	store, err := registry.Open(filepath.Join(dataDir, "registry"))
	if err != nil {
		return 0, err
	}
	regLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	regSrv := &http.Server{Handler: store, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = regSrv.Serve(regLn) }()
	defer regSrv.Close()

	e := &Estate{counts: map[string]int{}, arrivals: map[int]time.Time{}}
	defer e.Close()
	addrs := map[string]string{}
	for _, old := range demoAddrs {
		if addrs[old], err = freePort(); err != nil {
			return 0, err
		}
	}
	addrs["127.0.0.1:9464"] = "127.0.0.1:0"
	for dest, old := range map[string]string{"lab": "127.0.0.1:6661", "ehr-results": "127.0.0.1:6662"} {
		if _, err := e.startMLLP(dest, addrs[old]); err != nil {
			return 0, err
		}
	}
	if err := e.startHTTPOn("portal", addrs["127.0.0.1:6663"]); err != nil {
		return 0, err
	}
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		return 0, err
	}
	yaml := string(text)
	for _, old := range demoAddrs {
		if !strings.Contains(yaml, old) {
			return 0, fmt.Errorf("processes: %s no longer has %s; update bench.demoAddrs", cfgPath, old)
		}
		yaml = strings.ReplaceAll(yaml, old, addrs[old])
	}
	cfgFile := filepath.Join(dataDir, "careflow.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		return 0, err
	}

	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
	}()
	logFile, err := os.Create(filepath.Join(dataDir, "stages.log"))
	if err != nil {
		return 0, err
	}
	defer logFile.Close()
	// The pipeline's stages, named here rather than taken from
	// topics.Stages, which may grow stages (the analytics sink) that need
	// more than this estate provides.
	for _, stage := range []string{topics.StageIngest, topics.StageValidate, topics.StageNormalise, topics.StageRoute, topics.StageDeliver} {
		for c := range copies {
			if stage == topics.StageIngest && c > 0 {
				break
			}
			cmd := exec.Command(binary, "stage", stage, "--config", cfgFile, "--brokers", strings.Join(b.Addrs(), ","),
				"--schema-registry", "http://"+regLn.Addr().String(), "--instance-id", fmt.Sprintf("bench-%s-%d", stage, c),
				"--log-level", "warn")
			cmd.Stdout, cmd.Stderr = logFile, logFile
			if err := cmd.Start(); err != nil {
				return 0, fmt.Errorf("processes: start %s: %w", stage, err)
			}
			procs = append(procs, cmd)
		}
	}
	ehr := addrs["127.0.0.1:2575"]
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("tcp", ehr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("processes: ingest not listening on %s after 60s (see %s)", ehr, logFile.Name())
		}
		time.Sleep(50 * time.Millisecond) // polling for the ingest process to listen
	}
	base, want := 0, 0
	send := func(count int) (load.Result, error) {
		from := base
		res, err := load.Run(ctx, load.Config{Addr: ehr, Count: count, Connections: 8,
			Message: func(seq int) []byte { return mix.Message("X", from+seq) }})
		base += res.Sent
		want += mix.Deliveries(from, base)
		if err == nil && res.AA != res.Sent {
			err = fmt.Errorf("processes: %d of %d messages not accepted", res.Sent-res.AA, res.Sent)
		}
		if err != nil {
			return res, err
		}
		return res, e.waitDelivered(ctx, want, 2*time.Minute)
	}
	if _, err := send(200); err != nil { // warm up: every stage has joined and delivered
		return 0, err
	}
	res, err := send(n)
	if err != nil {
		return 0, err
	}
	return float64(n) / e.LastDelivery().Sub(res.Start).Seconds(), nil
}
