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

	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/internal/load"
	"github.com/careflow-health/careflow/topics"
	"github.com/careflow-health/careflow/topics/kafka"
)

// demoAddrs are the demo configuration's listen and destination addresses,
// which startOutside moves to free ports.
var demoAddrs = []string{"127.0.0.1:2575", "127.0.0.1:2576", "127.0.0.1:6661", "127.0.0.1:6662", "127.0.0.1:6663", "127.0.0.1:6665", "127.0.0.1:9464", "127.0.0.1:8080"}

// outsideEstate is what stays in the bench's process when careflow runs as
// processes of its own: the embedded broker, a schema registry and the
// stand-in destinations, with the demo configuration rewritten to use them.
// Closing the Estate stops all of it.
type outsideEstate struct {
	*Estate
	Brokers  string // the embedded broker's addresses, comma separated
	Registry string // the schema registry's URL
	Config   string // the rewritten configuration file
}

// startOutside starts the embedded broker and a schema registry under
// dataDir and the demo's stand-in destinations on free ports, leaving the
// destination down (if named) unstarted on its reserved port for
// StartDown, and writes the demo configuration (after edit, if any) with
// every address moved.
func startOutside(cfgPath, dataDir, down string, edit func(yaml string) (string, error)) (*outsideEstate, error) {
	e := &Estate{counts: map[string]int{}, arrivals: map[int]time.Time{}, downAddr: map[string]string{}}
	fail := func(err error) (*outsideEstate, error) { e.Close(); return nil, err }
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{DataDir: filepath.Join(dataDir, "kafka"), Port: -1})
	if err != nil {
		return fail(err)
	}
	e.stops = append(e.stops, b.Close)
	store, err := registry.Open(filepath.Join(dataDir, "registry"))
	if err != nil {
		return fail(err)
	}
	regLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	regSrv := &http.Server{Handler: store, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = regSrv.Serve(regLn) }()
	e.stops = append(e.stops, func() { _ = regSrv.Close() })

	addrs := map[string]string{}
	for _, old := range demoAddrs {
		if addrs[old], err = freeport.Addr(); err != nil {
			return fail(err)
		}
	}
	addrs["127.0.0.1:9464"] = "127.0.0.1:0"
	for dest, old := range map[string]string{"lab": "127.0.0.1:6661", "ehr-results": "127.0.0.1:6662"} {
		if dest == down {
			e.downAddr[dest] = addrs[old]
			continue
		}
		if _, err := e.startMLLP(dest, addrs[old]); err != nil {
			return fail(err)
		}
	}
	if err := e.startHTTPOn("portal", addrs["127.0.0.1:6663"]); err != nil {
		return fail(err)
	}
	// The FHIR store's stand-in answers 200 without a transaction-response:
	// still a delivery, with no remote ids.
	if err := e.startHTTPOn("fhir-store", addrs["127.0.0.1:6665"]); err != nil {
		return fail(err)
	}
	e.EHR = addrs["127.0.0.1:2575"]
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		return fail(err)
	}
	yaml := string(text)
	if edit != nil {
		if yaml, err = edit(yaml); err != nil {
			return fail(err)
		}
	}
	for _, old := range demoAddrs {
		if !strings.Contains(yaml, old) {
			return fail(fmt.Errorf("processes: %s no longer has %s; update bench.demoAddrs", cfgPath, old))
		}
		yaml = strings.ReplaceAll(yaml, old, addrs[old])
	}
	cfgFile := filepath.Join(dataDir, "careflow.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		return fail(err)
	}
	// The code maps it names are relative to it (codes[].file).
	maps, _ := filepath.Glob(filepath.Join(filepath.Dir(cfgPath), "*.csv"))
	for _, m := range maps {
		b, err := os.ReadFile(m)
		if err == nil {
			err = os.WriteFile(filepath.Join(dataDir, filepath.Base(m)), b, 0o600)
		}
		if err != nil {
			return fail(err)
		}
	}
	return &outsideEstate{Estate: e, Brokers: strings.Join(b.Addrs(), ","),
		Registry: "http://" + regLn.Addr().String(), Config: cfgFile}, nil
}

// stopProcesses asks each process to stop (SIGTERM), as an operator
// would, and kills those still running after 20 seconds.
func stopProcesses(procs []*exec.Cmd) {
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
}

// waitListening polls until something accepts connections on addr; log
// names where the process that should listen writes, for the error.
func waitListening(ctx context.Context, addr string, limit time.Duration, log string) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes: nothing listening on %s after %s (see %s)", addr, limit, log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

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
	e, err := startOutside(cfgPath, dataDir, "", nil)
	if err != nil {
		return 0, err
	}
	defer e.Close()

	var procs []*exec.Cmd
	defer func() { stopProcesses(procs) }()
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
			cmd := exec.Command(binary, "stage", stage, "--config", e.Config, "--brokers", e.Brokers,
				"--schema-registry", e.Registry, "--instance-id", fmt.Sprintf("bench-%s-%d", stage, c),
				"--log-level", "warn")
			cmd.Stdout, cmd.Stderr = logFile, logFile
			if err := cmd.Start(); err != nil {
				return 0, fmt.Errorf("processes: start %s: %w", stage, err)
			}
			procs = append(procs, cmd)
		}
	}
	if err := waitListening(ctx, e.EHR, 60*time.Second, logFile.Name()); err != nil {
		return 0, err
	}
	base, want := 0, 0
	send := func(count int) (load.Result, error) {
		from := base
		res, err := load.Run(ctx, load.Config{Addr: e.EHR, Count: count, Connections: 8,
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
