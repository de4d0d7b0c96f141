package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kafkaPassword = "s3cr3t-kafka-pass"

func kafkaEnv(name string) (string, bool) {
	if name == "KAFKA_PASSWORD" {
		return kafkaPassword, true
	}
	return "", false
}

// kafkaDir is a configuration directory holding the TLS files the snippets
// name, so that only the mistake under test is reported.
func kafkaDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "client.pem", "client.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not read by config"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestKafkaSecurityProblems checks that each mistake in kafka.tls and
// kafka.sasl is the one problem reported, at the line and key to edit.
// Each snippet starts with a blank line 1.
func TestKafkaSecurityProblems(t *testing.T) {
	const inbound = "inbound: [{name: ehr, listen: 127.0.0.1:2575}]\n"
	cases := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"tls with the embedded broker", `
kafka:
  tls: {ca_file: ca.pem}
`, 3, "kafka.tls", "applies only to an external cluster: set kafka.brokers"},
		{"sasl with the embedded broker", `
kafka:
  sasl: {mechanism: SCRAM-SHA-512, username: careflow, password: {env: KAFKA_PASSWORD}}
`, 3, "kafka.sasl", "applies only to an external cluster: set kafka.brokers"},
		{"unknown mechanism", `
kafka:
  brokers: [kafka-1:9093]
  tls: {ca_file: ca.pem}
  sasl:
    mechanism: GSSAPI
    username: careflow
    password: {env: KAFKA_PASSWORD}
`, 6, "kafka.sasl.mechanism", `want one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got "GSSAPI"`},
		{"mechanism in lower case", `
kafka:
  brokers: [kafka-1:9093]
  sasl:
    mechanism: scram-sha-512
    username: careflow
    password: {env: KAFKA_PASSWORD}
`, 5, "kafka.sasl.mechanism", `got "scram-sha-512" (did you mean "SCRAM-SHA-512"?)`},
		{"no mechanism", `
kafka:
  brokers: [kafka-1:9093]
  sasl:
    username: careflow
    password: {env: KAFKA_PASSWORD}
`, 4, "kafka.sasl.mechanism", "mechanism is required: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"},
		{"no username", `
kafka:
  brokers: [kafka-1:9093]
  sasl:
    mechanism: SCRAM-SHA-256
    password: {env: KAFKA_PASSWORD}
`, 4, "kafka.sasl.username", "username is required"},
		{"no password", `
kafka:
  brokers: [kafka-1:9093]
  sasl:
    mechanism: SCRAM-SHA-256
    username: careflow
`, 4, "kafka.sasl.password", "password is required, as {env: NAME} or {file: PATH}"},
		{"password written in the file", `
kafka:
  brokers: [kafka-1:9093]
  sasl:
    mechanism: SCRAM-SHA-256
    username: careflow
    password: ` + kafkaPassword + `
`, 7, "kafka.sasl.password", "a secret is given as {env: NAME} or {file: PATH}"},
		{"password variable not set", `
kafka:
  brokers: [kafka-1:9093]
  sasl:
    mechanism: SCRAM-SHA-256
    username: careflow
    password: {env: KAFKA_PASS}
`, 7, "kafka.sasl.password", "environment variable KAFKA_PASS is not set"},
		{"PLAIN without TLS", `
kafka:
  brokers: [kafka-1:9092]
  sasl:
    mechanism: PLAIN
    username: careflow
    password: {env: KAFKA_PASSWORD}
`, 5, "kafka.sasl.mechanism", "PLAIN without kafka.tls sends the password unencrypted: add a kafka.tls block, or use SCRAM-SHA-512, or set kafka.sasl.allow_plaintext: true"},
		{"allow_plaintext with TLS", `
kafka:
  brokers: [kafka-1:9093]
  tls: {ca_file: ca.pem}
  sasl:
    mechanism: PLAIN
    username: careflow
    password: {env: KAFKA_PASSWORD}
    allow_plaintext: true
`, 9, "kafka.sasl.allow_plaintext", "has no effect: kafka.tls encrypts the connection"},
		{"allow_plaintext with SCRAM", `
kafka:
  brokers: [kafka-1:9092]
  sasl:
    mechanism: SCRAM-SHA-512
    username: careflow
    password: {env: KAFKA_PASSWORD}
    allow_plaintext: true
`, 8, "kafka.sasl.allow_plaintext", "applies to mechanism PLAIN only"},
		{"client certificate without key", `
kafka:
  brokers: [kafka-1:9093]
  tls: {ca_file: ca.pem, cert_file: client.pem}
`, 4, "kafka.tls", "a client certificate needs both cert_file and key_file"},
		{"client_ca_file", `
kafka:
  brokers: [kafka-1:9093]
  tls:
    client_ca_file: ca.pem
`, 5, "kafka.tls.client_ca_file", "does not apply to the Kafka client; use ca_file"},
		{"encrypted key", `
kafka:
  brokers: [kafka-1:9093]
  tls:
    cert_file: client.pem
    key_file: client.key
    key_password: {env: KAFKA_PASSWORD}
`, 7, "kafka.tls.key_password", "encrypted private keys are not supported yet"},
		{"CA file missing", `
kafka:
  brokers: [kafka-1:9093]
  tls:
    ca_file: hospital-ca.pem
`, 5, "kafka.tls.ca_file", "no such file"},
		{"unknown key in sasl", `
kafka:
  brokers: [kafka-1:9093]
  sasl:
    mechanism: SCRAM-SHA-512
    user: careflow
    username: careflow
    password: {env: KAFKA_PASSWORD}
`, 6, "kafka.sasl.user", "unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := kafkaDir(t)
			_, err := Parse(filepath.Join(dir, "t.yaml"), []byte(tc.yaml+inbound), WithLookupEnv(kafkaEnv))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse error = %v, want Problems", err)
			}
			if len(ps) != 1 {
				t.Fatalf("want one problem, got %d:\n%v", len(ps), err)
			}
			p := ps[0]
			if p.Pos.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Msg, tc.msg) {
				t.Errorf("got %v\nwant line %d key %q containing %q", p, tc.line, tc.key, tc.msg)
			}
			if strings.Contains(err.Error(), kafkaPassword) {
				t.Errorf("problem shows the password: %v", err)
			}
		})
	}
}

func TestKafkaSecurityAccepted(t *testing.T) {
	cases := []struct{ name, kafka string }{
		{"SCRAM over mutual TLS", `
  tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key, server_name: kafka.hospital.internal}
  sasl: {mechanism: SCRAM-SHA-512, username: careflow, password: {env: KAFKA_PASSWORD}}`},
		{"PLAIN over TLS with the system roots", `
  tls: {}
  sasl: {mechanism: PLAIN, username: careflow, password: {file: kafka-password}}`},
		{"PLAIN in clear text, said so", `
  sasl: {mechanism: PLAIN, username: careflow, password: {env: KAFKA_PASSWORD}, allow_plaintext: true}`},
		{"SCRAM without TLS", `
  sasl: {mechanism: SCRAM-SHA-256, username: careflow, password: {env: KAFKA_PASSWORD}}`},
		{"TLS alone", `
  tls: {ca_file: ca.pem}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := kafkaDir(t)
			if err := os.WriteFile(filepath.Join(dir, "kafka-password"), []byte(kafkaPassword+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			src := "kafka:\n  brokers: [kafka-1.hospital.internal:9093]" + tc.kafka + "\ninbound: [{name: ehr, listen: 127.0.0.1:2575}]\n"
			c, err := Parse(filepath.Join(dir, "careflow.yaml"), []byte(src), WithLookupEnv(kafkaEnv))
			if err != nil {
				t.Fatal(err)
			}
			k := c.Kafka
			if k.TLS != nil && k.TLS.CAFile != "" && k.TLS.CAFile != filepath.Join(dir, "ca.pem") {
				t.Errorf("kafka.tls.ca_file = %q, want it relative to the file's directory", k.TLS.CAFile)
			}
			if k.SASL != nil && k.SASL.Password.Value() != kafkaPassword {
				t.Errorf("password not resolved")
			}
			// fmt prints a nested pointer as an address, so the secret
			// itself is printed too: its String and GoString must hide it.
			printed := []any{k}
			if k.SASL != nil {
				printed = append(printed, *k.SASL, k.SASL.Password, *k.SASL.Password)
			}
			for _, v := range printed {
				for _, format := range []string{"%v", "%+v", "%#v"} {
					if s := fmt.Sprintf(format, v); strings.Contains(s, kafkaPassword) {
						t.Errorf("%s of %T prints the password: %s", format, v, s)
					}
				}
			}
		})
	}
}
