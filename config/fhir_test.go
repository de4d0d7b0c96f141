package config

import (
	"testing"

	"github.com/careflow-health/careflow/avro"
)

// TestFHIRProblems checks the FHIR keys' mistakes are reported at the key
// an analyst must edit.
func TestFHIRProblems(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"resource type misspelt", `
http: {listen: 127.0.0.1:8080}
inbound:
  - name: apps
    transport: fhir
    resources: [Observation, Patinet]
`, 6, "inbound[0].resources[1]", `careflow does not take FHIR "Patinet" (did you mean "Patient"?)`},
		{"fhir interface with a listener", `
http: {listen: 127.0.0.1:8080}
inbound:
  - name: apps
    transport: fhir
    listen: 127.0.0.1:2590
`, 6, "inbound[0].listen", `a fhir interface is served on http.listen at /fhir/apps/; remove listen`},
		{"fhir interface without http", `
http: {listen: ""}
inbound:
  - name: apps
    transport: fhir
`, 5, "inbound[0].transport", `HTTP writes need http.listen`},
		{"resources on an mllp interface", `
inbound:
  - name: ehr
    listen: 127.0.0.1:2575
    resources: [Patient]
`, 5, "inbound[0].resources", `applies to fhir interfaces only`},
		{"fhir destination with hl7v2", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: store
    transport: fhir
    url: http://127.0.0.1:6665/fhir
    format: hl7v2
`, 7, "destinations[0].format", `a fhir destination receives FHIR R4 transaction Bundles`},
		{"fhir destination without url", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: store
    transport: fhir
`, 4, "destinations[0].url", `needs url`},
		{"smart without client id", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: store
    transport: fhir
    url: http://127.0.0.1:6665/fhir
    smart: {token_url: "http://127.0.0.1:6666/token", key_file: /dev/null}
`, 7, "destinations[0].smart.client_id", `client_id is required`},
		{"smart token url over plain http", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: store
    transport: fhir
    url: http://127.0.0.1:6665/fhir
    smart: {token_url: "http://auth.example.org/token", client_id: careflow, key_file: /dev/null}
`, 7, "destinations[0].smart.token_url", `want an https:// URL`},
		{"smart on an mllp destination", `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - name: lab
    address: 127.0.0.1:6661
    smart: {token_url: "https://auth.example.org/token", client_id: careflow, key_file: /dev/null}
`, 6, "destinations[0].smart", `applies to fhir destinations only`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.yaml, tc.line, tc.key, tc.msg) })
	}
}

func TestFHIRDestinationDefaultsToFHIRFormat(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
destinations:
  - {name: store, transport: fhir, url: "http://127.0.0.1:6665/fhir"}
routes: [{name: all, destination: store, when: "true"}]
fhir:
  identifier_systems: {HOSP: "https://trust.example.org/Id/mrn"}
`), WithExprCheck(failExpr), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Destinations[0].Format; got != avro.FormatFHIR {
		t.Errorf("format %q, want fhir", got)
	}
	if got := c.FHIR.IdentifierSystems["HOSP"]; got != "https://trust.example.org/Id/mrn" {
		t.Errorf("identifier_systems.HOSP = %q", got)
	}
}
