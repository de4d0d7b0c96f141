package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// noEnv is an empty environment, so tests do not depend on the machine's.
func noEnv(string) (string, bool) { return "", false }

// failExpr stands in for the route stage's CEL compiler: it rejects any
// expression containing "bad".
func failExpr(expr string) error {
	if strings.Contains(expr, "bad") {
		return errors.New("ERROR: <input>:1:1: undeclared reference to 'bad'\n | bad\n | ^")
	}
	return nil
}

// TestProblems checks that each kind of mistake is reported at the line and
// key an analyst must edit. Each snippet starts with a blank line 1, so
// line numbers count as the snippet reads.
func TestProblems(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"unknown key with suggestion", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    read_timout: 30s
`, 5, "inbound[0].read_timout", `unknown key (did you mean "read_timeout"?)`},
		{"ack mode misspelt", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    ack: validate
`, 5, "inbound[0].ack", `want validated or commit, got "validate" (did you mean "validated"?)`},
		{"reply_to names no destination", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    reply_to: ehr-notification
destinations:
  - {name: ehr-notifications, address: 127.0.0.1:6664}
`, 5, "inbound[0].reply_to", `unknown destination "ehr-notification" (did you mean "ehr-notifications"?)`},
		{"reply_to a JSON destination", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    reply_to: portal
destinations:
  - {name: portal, transport: http, url: "http://127.0.0.1:8090/events", format: json}
`, 5, "inbound[0].reply_to", `destination "portal" takes json; acknowledgements and notifications are HL7 v2 messages, so reply_to needs an hl7v2 destination`},
		{"reply_to destination whose fields drop the acknowledgment", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    reply_to: notes
destinations:
  - {name: notes, address: 127.0.0.1:6664, fields: [patient.identifiers]}
`, 5, "inbound[0].reply_to", `destination "notes" has a fields list without acknowledgment, which every acknowledgement and notification is made of: add it`},
		{"unknown_order misspelt", `
inbound:
  - name: lab-results
    listen: 127.0.0.1:2576
    unknown_order: held
`, 5, "inbound[0].unknown_order", `want deliver or hold, got "held" (did you mean "hold"?)`},
		{"correlation_wait negative", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    correlation_wait: -5s
`, 5, "inbound[0].correlation_wait", `want a positive duration, got "-5s"`},
		{"correlation_wait over a day", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    correlation_wait: 48h
`, 5, "inbound[0].correlation_wait", `want 0 (no wait) up to 24h, got 48h0m0s`},
		{"expect with nothing", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations: [{name: lab, address: 127.0.0.1:6661}]
routes:
  - name: orders-to-lab
    destination: lab
    when: 'true'
    expect: {priority: {S: {}}}
`, 8, "routes[0].expect.priority[\"S\"]", `expects nothing: give accepted_within or resulted_within`},
		{"expect key misspelt", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations: [{name: lab, address: 127.0.0.1:6661}]
routes:
  - name: orders-to-lab
    destination: lab
    when: 'true'
    expect:
      accept_within: 5m
`, 9, "routes[0].expect.accept_within", `unknown key (did you mean "accepted_within"?)`},
		{"out_of_order misspelt", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    out_of_order: rejected
`, 5, "inbound[0].out_of_order", `want reject or {hold: DURATION}, got "rejected" (did you mean "reject"?)`},
		{"out_of_order hold without a time", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    out_of_order: hold
`, 5, "inbound[0].out_of_order", `hold needs a time: write out_of_order: {hold: 30s}`},
		{"out_of_order hold too long", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    out_of_order: {hold: 1h}
`, 5, "inbound[0].out_of_order.hold", `want a hold up to 10m (every ADT message of the interface waits it), got 1h0m0s`},
		{"trust: unknown check-digit scheme", `
identity:
  trust:
    - {type: NH, authority: NHS, check: nsh}
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 4, "identity.trust[0].check", `unknown check-digit scheme "nsh" (did you mean "nhs"?) (known: chi, nhs)`},
		{"trust: an entry that names nothing", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    trust:
      - {check: nhs}
`, 6, "inbound[0].trust[0]", `give the identifier's type (CX.5, e.g. NH or MR), its assigning authority (CX.4, e.g. NHS or HOSP), or both`},
		{"unknown top-level key", `
kafak: {partitions: 3}
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 2, "kafak", `unknown key (did you mean "kafka"?)`},
		{"unknown key, no near match", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
colour: blue
`, 3, "colour", "unknown key"},
		{"wrong type: list for string", `
inbound:
  - name: [ehr]
    listen: 127.0.0.1:2575
`, 3, "inbound[0].name", "want a string, got a list"},
		{"wrong type: word for integer", `
kafka:
  partitions: six
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 3, "kafka.partitions", `want an integer, got "six"`},
		{"wrong type: bool", `
kafka:
  sync_writes: yes please
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 3, "kafka.sync_writes", `want true or false, got "yes please"`},
		{"bad duration", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    idle_timeout: 10 minutes
`, 5, "inbound[0].idle_timeout", `want a duration such as 500ms, 30s, 10m or 168h, got "10 minutes"`},
		{"bad size", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    max_message_size: 4 megs
`, 5, "inbound[0].max_message_size", `want a positive size`},
		{"repeated key", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    name: ehr2
`, 5, "inbound[0].name", "key repeated (first at line 3)"},
		{"duplicate name", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
  - name: ehr
    listen: 127.0.0.1:2576
`, 5, "inbound[1].name", `name "ehr" is already used by inbound[0].name (line 3)`},
		{"badly formed name", `
inbound:
  - name: EHR_Main
    listen: 127.0.0.1:2575
`, 3, "inbound[0].name", `must be lower-case letters, digits and dashes`},
		{"unknown destination", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: lab
    address: 127.0.0.1:6661
routes:
  - name: r
    destination: labs
    when: "true"
`, 8, "routes[0].destination", `unknown destination "labs" (did you mean "lab"?)`},
		{"destination without route", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: lab
    address: 127.0.0.1:6661
`, 4, "destinations[0].name", `no route sends to destination "lab"`},
		{"bad CEL", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations: [{name: lab, address: 127.0.0.1:6661}]
routes:
  - name: r
    destination: lab
    when: bad == 1
`, 7, "routes[0].when", "ERROR: <input>:1:1: undeclared reference to 'bad'"},
		{"missing when", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations: [{name: lab, address: 127.0.0.1:6661}]
routes:
  - name: r
    destination: lab
`, 5, "routes[0].when", "when is required"},
		{"missing env secret", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: portal
    transport: http
    url: https://portal.example/events
    headers:
      Authorization: {env: PORTAL_TOKEN}
routes: [{name: r, destination: portal, when: "true"}]
`, 8, `destinations[0].headers["Authorization"]`, "environment variable PORTAL_TOKEN is not set"},
		{"secret written in the file", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: portal
    transport: http
    url: https://portal.example/events
    headers:
      Authorization: Bearer s3cr3t
routes: [{name: r, destination: portal, when: "true"}]
`, 8, `destinations[0].headers["Authorization"]`, "a secret is given as {env: NAME} or {file: PATH}, never written in the file"},
		{"duplicate port", `
admin: {listen: 127.0.0.1:9464}
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
  - name: lab
    listen: 0.0.0.0:2575
`, 7, "inbound[1].listen", "port 2575 is already used by inbound[0].listen (line 5)"},
		{"port clashes with a default", `
inbound:
  - name: ehr
    listen: 127.0.0.1:8080
`, 4, "inbound[0].listen", "port 8080 is already used by http.listen"},
		{"listen not host:port", `
inbound:
  - name: ehr
    listen: 2575
`, 4, "inbound[0].listen", `want host:port, got "2575"`},
		{"mllp destination without address", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: lab
    transport: mllp
routes: [{name: r, destination: lab, when: "true"}]
`, 4, "destinations[0].address", "an mllp destination needs address"},
		{"http destination with bad url", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: portal
    transport: http
    url: ftp://portal/events
routes: [{name: r, destination: portal, when: "true"}]
`, 6, "destinations[0].url", `want an http:// or https:// URL with a host, got "ftp://portal/events"`},
		{"json over mllp", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: lab
    address: 127.0.0.1:6661
    format: json
routes: [{name: r, destination: lab, when: "true"}]
`, 6, "destinations[0].format", `an mllp destination carries hl7v2, not "json"`},
		{"hl7 version out of range", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: lab
    address: 127.0.0.1:6661
    hl7_version: "3.0"
routes: [{name: r, destination: lab, when: "true"}]
`, 6, "destinations[0].hl7_version", `want an HL7 v2 version from 2.1 to 2.8`},
		{"bad message type pattern", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    accept:
      message_types: ["ADT^A01", "ADT-A04"]
`, 6, "inbound[0].accept.message_types[1]", `want a message type such as "ADT^A01" or "ADT^*", got "ADT-A04"`},
		{"bad required path", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    accept:
      required:
        "ADT^*": [PID, PID3]
`, 7, `inbound[0].accept.required["ADT^*"][1]`, `got "PID3"`},
		{"partitions zero", `
kafka:
  partitions: 0
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 3, "kafka.partitions", "must be at least 1"},
		{"replication with embedded broker", `
kafka:
  replication: 3
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`, 3, "kafka.replication", "the embedded broker has one node"},
		{"no inbound", `
kafka: {partitions: 3}
`, 0, "inbound", "at least one inbound interface is required"},
		{"yaml syntax", `
inbound:
  - name: ehr
    listen: 127.0.0.1: 2575
`, 4, "", "YAML syntax: mapping values are not allowed in this context"},
		{"tls file missing", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    tls: {cert_file: testdata/nope.pem, key_file: testdata/nope.key}
`, 5, "inbound[0].tls.cert_file", "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.yaml, tc.line, tc.key, tc.msg) })
	}
}

// wantProblem parses yaml (as t.yaml) and checks one of its problems is
// at line and key, with a message containing msg.
func wantProblem(t *testing.T, yaml string, line int, key, msg string) {
	t.Helper()
	_, err := Parse("t.yaml", []byte(yaml), WithExprCheck(failExpr), WithLookupEnv(noEnv))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error = %v, want Problems", err)
	}
	for _, p := range ps {
		if p.Pos.Line == line && p.Key == key && strings.Contains(p.Msg, msg) {
			if p.Pos.File != "t.yaml" {
				t.Errorf("problem file = %q, want t.yaml", p.Pos.File)
			}
			return
		}
	}
	t.Errorf("want problem at line %d key %q containing %q; got:\n%v", line, key, msg, err)
}

func TestProblemsMessage(t *testing.T) {
	src := `inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: lab
    address: 127.0.0.1:6661
routes:
  - name: orders
    destination: labs
    when: "true"
  - name: orders
    destination: lab
    when: "true"
kafka: {partitions: 0}
`
	_, err := Parse("careflow.yaml", []byte(src), WithLookupEnv(noEnv))
	want := strings.Join([]string{
		`careflow.yaml:7: routes[0].destination: unknown destination "labs" (did you mean "lab"?)`,
		`careflow.yaml:9: routes[1].name: name "orders" is already used by routes[0].name (line 6)`,
		`careflow.yaml:12: kafka.partitions: must be at least 1`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}
}

func TestSecretNotEchoed(t *testing.T) {
	src := `inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: portal
    transport: http
    url: https://portal.example/events
    headers: {Authorization: Bearer s3cr3t-token}
routes: [{name: r, destination: portal, when: "true"}]
`
	_, err := Parse("t.yaml", []byte(src), WithLookupEnv(noEnv))
	if err == nil {
		t.Fatal("want an error for a secret written in the file")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("problem echoes the secret: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"read_timeout", "idle_timeout", "listen", "name"}
	for _, tc := range []struct{ got, want string }{
		{"read_timout", "read_timeout"},
		{"lisen", "listen"},
		{"Name", "name"},
		{"colour", ""},
		{"x", ""},
	} {
		got := suggest(tc.got, known)
		want := ""
		if tc.want != "" {
			want = fmt.Sprintf(" (did you mean %q?)", tc.want)
		}
		if got != want {
			t.Errorf("suggest(%q) = %q, want %q", tc.got, got, want)
		}
	}
}

// TestDecodeAndValidateTogether checks that one run reports decoding and
// validation mistakes together, and that a key which failed to decode is
// not reported again by validation in other words.
func TestDecodeAndValidateTogether(t *testing.T) {
	src := `inbound:
  - name: [ehr]
    listen: 127.0.0.1:2575
destinations: [{name: lab, address: 127.0.0.1:6661}]
routes: [{name: r, destination: lbb, when: "true"}]
`
	_, err := Parse("t.yaml", []byte(src))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error = %v, want Problems", err)
	}
	want := `t.yaml:2: inbound[0].name: want a string, got a list
t.yaml:4: destinations[0].name: no route sends to destination "lab"; add a route or remove the destination
t.yaml:5: routes[0].destination: unknown destination "lbb" (did you mean "lab"?)`
	if err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}
}
