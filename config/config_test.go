package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/stages/route"
)

const demoFile = "../examples/demo/careflow.yaml"

// celCheck compiles a route condition exactly as the route stage will.
func celCheck(expr string) error {
	_, err := route.Compile(expr)
	return err
}

func TestDemoLoadsClean(t *testing.T) {
	c, err := config.Load(demoFile, config.WithExprCheck(celCheck))
	if err != nil {
		t.Fatalf("demo configuration:\n%v", err)
	}
	// The demo's third parties listen and dial on these fixed ports.
	want := map[string]string{
		"admin":       "127.0.0.1:9464",
		"http":        "127.0.0.1:8080",
		"ehr":         "127.0.0.1:2575",
		"lab-results": "127.0.0.1:2576",
		"lab":         "127.0.0.1:6661",
		"ehr-results": "127.0.0.1:6662",
		"portal":      "http://127.0.0.1:6663/events",
	}
	got := map[string]string{"admin": c.Admin.Listen, "http": c.HTTP.Listen}
	for _, in := range c.Inbound {
		got[in.Name] = in.Listen
	}
	for _, d := range c.Destinations {
		got[d.Name] = d.Address + d.URL
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !c.Kafka.Embedded() {
		t.Error("demo should use the embedded broker")
	}
	if p, _ := c.Destination("portal"); p.Format != "json" || p.Transport != "http" {
		t.Errorf("portal = %s/%s, want http/json", p.Transport, p.Format)
	}
	if !filepath.IsAbs(c.Kafka.DataDir) && !strings.HasPrefix(c.Kafka.DataDir, "../examples/demo") {
		t.Errorf("data_dir %q is not relative to the configuration file", c.Kafka.DataDir)
	}
}

// TestDemoRoutes evaluates the demo's route conditions on sample events, so
// that the file routes what its comments and the demo's simulators promise.
func TestDemoRoutes(t *testing.T) {
	c, err := config.Load(demoFile, config.WithExprCheck(celCheck))
	if err != nil {
		t.Fatal(err)
	}
	ev := func(src, typ, trig string) *avro.ClinicalEvent {
		return &avro.ClinicalEvent{MessageType: typ, TriggerEvent: trig, Provenance: avro.Provenance{Interface: src}}
	}
	result := func(orderStatus, obsStatus string) *avro.ClinicalEvent {
		e := ev("lab-results", "ORU", "R01")
		e.Orders = []avro.Order{{PlacerOrderNumber: "ORD1", ResultStatus: orderStatus}}
		e.Observations = []avro.Observation{{SetID: "1", Status: obsStatus}}
		return e
	}
	cases := []struct {
		name string
		ev   *avro.ClinicalEvent
		want []string // destinations, sorted
	}{
		{"admit", ev("ehr", "ADT", "A01"), []string{"fhir-store", "lab", "portal"}},
		{"transfer", ev("ehr", "ADT", "A02"), nil},
		{"discharge", ev("ehr", "ADT", "A03"), []string{"fhir-store", "portal"}},
		{"register", ev("ehr", "ADT", "A04"), []string{"fhir-store", "lab", "portal"}},
		{"update", ev("ehr", "ADT", "A08"), []string{"fhir-store", "lab", "portal"}},
		{"cancel admit", ev("ehr", "ADT", "A11"), nil},
		{"add person", ev("ehr", "ADT", "A28"), []string{"fhir-store", "lab"}},
		{"merge: every subscriber hears of it", ev("ehr", "ADT", "A40"), []string{"fhir-store", "lab", "portal"}},
		{"link", ev("ehr", "ADT", "A24"), []string{"lab"}},
		{"ORM order", ev("ehr", "ORM", "O01"), []string{"fhir-store", "lab"}},
		{"OML order", ev("ehr", "OML", "O21"), []string{"fhir-store", "lab"}},
		{"final result", result("F", "F"), []string{"ehr-results", "fhir-store", "portal"}},
		{"final observation only", result("", "F"), []string{"ehr-results", "fhir-store", "portal"}},
		{"preliminary result", result("P", "P"), []string{"ehr-results", "fhir-store"}},
		{"result without orders", ev("lab-results", "ORU", "R01"), []string{"ehr-results", "fhir-store"}},
		{"an app's reading (FHIR in, v2 and FHIR out)", ev("apps", "ORU", "R01"), []string{"ehr-results", "fhir-store"}},
		{"an app's patient: the EHR's record is the fuller one", ev("apps", "ADT", "A28"), nil},
	}
	type compiled struct {
		dest string
		eval func(map[string]any) (bool, error)
	}
	var routes []compiled
	for _, r := range c.Routes {
		prg, err := route.Compile(r.When)
		if err != nil {
			t.Fatalf("route %s: %v", r.Name, err)
		}
		routes = append(routes, compiled{r.Destination, func(act map[string]any) (bool, error) {
			out, _, err := prg.Eval(act)
			if err != nil {
				return false, err
			}
			b, ok := out.Value().(bool)
			if !ok {
				return false, fmt.Errorf("not bool: %v", out)
			}
			return b, nil
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range routes {
				ok, err := r.eval(route.Activation(tc.ev))
				if err != nil {
					t.Fatalf("route to %s: %v", r.dest, err)
				}
				if ok && !slices.Contains(got, r.dest) {
					got = append(got, r.dest)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("destinations = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDefaultsApplied(t *testing.T) {
	src := `inbound:
  - name: ehr
    listen: 127.0.0.1:2575
  - name: web
    transport: http
    max_message_size: 512KiB
destinations:
  - name: lab
    address: 127.0.0.1:6661
    retry: {initial: 1s}
    sla: 2m
routes:
  - name: all
    destination: lab
    when: "true"
  - name: fast
    destination: lab
    when: "true"
    sla: 10s
`
	c, err := config.Parse("dir/careflow.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Partitions != 6 || c.Kafka.Replication != 1 || c.Kafka.TransactionRecords != 500 || c.Kafka.Listen != "127.0.0.1:9092" {
		t.Errorf("kafka defaults not applied: %+v", c.Kafka)
	}
	if c.Kafka.DataDir != filepath.Join("dir", "data/kafka") {
		t.Errorf("data_dir = %q, want it relative to the file", c.Kafka.DataDir)
	}
	if c.Admin.Listen != "127.0.0.1:9464" || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("listener defaults not applied: %+v %+v", c.Admin, c.HTTP)
	}
	ehr, ok := c.InboundByName("ehr")
	if !ok {
		t.Fatal("no inbound ehr")
	}
	wantIn := config.DefaultInbound()
	wantIn.Name, wantIn.Listen = "ehr", "127.0.0.1:2575"
	if fmt.Sprintf("%+v", ehr) != fmt.Sprintf("%+v", wantIn) {
		t.Errorf("inbound ehr = %+v\nwant %+v", ehr, wantIn)
	}
	web, _ := c.InboundByName("web")
	if web.MaxMessageSize != 512<<10 || web.ReadTimeout != 30*time.Second {
		t.Errorf("inbound web size %d timeout %s", web.MaxMessageSize, web.ReadTimeout)
	}
	lab, _ := c.Destination("lab")
	want := config.Retry{Initial: time.Second, Max: 30 * time.Second, Multiplier: 2}
	if lab.Retry != want {
		t.Errorf("retry = %+v, want %+v (a partial block keeps the other defaults)", lab.Retry, want)
	}
	if lab.Format != "hl7v2" || lab.HL7Version != "2.5.1" || lab.AckTimeout != 30*time.Second || lab.Breaker.Failures != 5 {
		t.Errorf("destination defaults not applied: %+v", lab)
	}
	if c.Routes[0].SLA != 2*time.Minute || c.Routes[1].SLA != 10*time.Second {
		t.Errorf("route SLAs = %s, %s; want the destination's 2m and the override 10s", c.Routes[0].SLA, c.Routes[1].SLA)
	}
	if c.Path != "dir/careflow.yaml" {
		t.Errorf("Path = %q", c.Path)
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: portal
    transport: http
    url: https://portal.example/events
    headers:
      Authorization: {env: PORTAL_TOKEN}
      X-Api-Key: {file: token}
routes: [{name: r, destination: portal, when: "true"}]
`
	env := func(name string) (string, bool) {
		if name == "PORTAL_TOKEN" {
			return "env-token", true
		}
		return "", false
	}
	c, err := config.Parse(filepath.Join(dir, "careflow.yaml"), []byte(src), config.WithLookupEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Destination("portal")
	if got := p.Headers["Authorization"].Value(); got != "env-token" {
		t.Errorf("env secret = %q", got)
	}
	if got := p.Headers["X-Api-Key"].Value(); got != "file-token" {
		t.Errorf("file secret = %q, want the file without its newline", got)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, p); strings.Contains(s, "-token") {
			t.Errorf("%s of a destination prints a secret: %s", format, s)
		}
	}
}

func TestLoadUnreadable(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"))
	var ps config.Problems
	if errors.As(err, &ps) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error = %v (%T), want a wrapped fs.ErrNotExist", err, err)
	}
}

func TestSizes(t *testing.T) {
	cases := []struct {
		in   string
		want int
		ok   bool
	}{
		{"4MiB", 4 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1MB", 1_000_000, true},
		{"64KB", 64_000, true},
		{"100B", 100, true},
		{"1048576", 1 << 20, true},
		{"0", 0, false},
		{"-1MiB", 0, false},
		{"4 mb", 0, false},
		{"MiB", 0, false},
	}
	for _, tc := range cases {
		src := fmt.Sprintf("inbound: [{name: ehr, listen: \"127.0.0.1:2575\", max_message_size: %q}]\n", tc.in)
		c, err := config.Parse("t.yaml", []byte(src))
		if !tc.ok {
			if err == nil {
				t.Errorf("%q accepted", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := c.Inbound[0].MaxMessageSize; got != tc.want {
			t.Errorf("%q = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestTLSPathsRelativeToFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"server.pem", "server.key", "clients.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not checked here"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := `inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    tls: {cert_file: server.pem, key_file: server.key, client_ca_file: clients.pem}
`
	c, err := config.Parse(filepath.Join(dir, "careflow.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tls := c.Inbound[0].TLS
	if tls.CertFile != filepath.Join(dir, "server.pem") || tls.ClientCAFile != filepath.Join(dir, "clients.pem") {
		t.Errorf("TLS paths not resolved against the file's directory: %+v", tls)
	}

	src = strings.Replace(src, "client_ca_file", "ca_file", 1)
	_, err = config.Parse(filepath.Join(dir, "careflow.yaml"), []byte(src))
	if err == nil || !strings.Contains(err.Error(), ":4: inbound[0].tls.ca_file: does not apply to listeners") {
		t.Errorf("ca_file on a listener: error = %v", err)
	}
}

// key_password is refused wherever a TLS block may stand, at check time,
// with the line of the key: the engine cannot read encrypted keys yet.
func TestKeyPasswordRefused(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"server.pem", "server.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not checked here"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lookup := config.WithLookupEnv(func(string) (string, bool) { return "secret-not-used", true })
	for _, tc := range []struct{ name, src, want string }{
		{"inbound", `inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    tls:
      cert_file: server.pem
      key_file: server.key
      key_password: {env: KEY_PASS}
`, ":7: inbound[0].tls.key_password: encrypted private keys are not supported yet"},
		{"destination", `inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: lab
    address: 127.0.0.1:6661
    tls:
      cert_file: server.pem
      key_file: server.key
      key_password: {env: KEY_PASS}
routes: [{name: all, destination: lab}]
`, ":8: destinations[0].tls.key_password: encrypted private keys are not supported yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse(filepath.Join(dir, "careflow.yaml"), []byte(tc.src), lookup)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The return-path keys read as written: out_of_order as the word reject or
// a hold, and the rest with their defaults when left out.
func TestReturnPathKeys(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    reply_to: notes
    correlation_wait: 20s
    out_of_order: {hold: 30s}
  - name: lab-results
    listen: 127.0.0.1:2576
    out_of_order: reject
    unknown_order: hold
destinations: [{name: notes, address: 127.0.0.1:6664}, {name: lab, address: 127.0.0.1:6661}]
routes:
  - name: r
    destination: lab
    when: 'true'
    expect: {accepted_within: 5m, priority: {S: {accepted_within: 1m}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	ehr, lab := cfg.Inbound[0], cfg.Inbound[1]
	if ehr.ReplyTo != "notes" || ehr.CorrelationWait != 20*time.Second || ehr.OutOfOrder.Hold != 30*time.Second || ehr.ReplyTimeout != 5*time.Minute || ehr.UnknownOrder != config.UnknownOrderDeliver {
		t.Errorf("ehr %+v", ehr)
	}
	if lab.OutOfOrder.Hold != 0 || lab.UnknownOrder != config.UnknownOrderHold || lab.ReplyTo != "" {
		t.Errorf("lab-results %+v", lab)
	}
	if e := cfg.Routes[0].Expect; e == nil || e.AcceptedWithin != 5*time.Minute || e.Priority["S"].AcceptedWithin != time.Minute {
		t.Errorf("expect %+v", e)
	}
}
