package engine_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/engine"
	"github.com/careflow-health/careflow/internal/testpki"
	"github.com/careflow-health/careflow/stages/route"
)

const (
	kafkaUser     = "careflow"
	kafkaPassword = "right-horse-battery"
)

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// securedCluster is a Kafka that requires TLS with a client certificate
// signed by ca, and SASL: user careflow with kafkaPassword for every
// mechanism.
func securedCluster(t *testing.T, ca *testpki.CA) *kfake.Cluster {
	t.Helper()
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{ca.Issue(t, testpki.Leaf{Use: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})},
			ClientCAs:    ca.Pool(),
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		}),
		kfake.EnableSASL(),
		kfake.Superuser(config.SASLPlain, kafkaUser, kafkaPassword),
		kfake.Superuser(config.SASLScramSHA256, kafkaUser, kafkaPassword),
		kfake.Superuser(config.SASLScramSHA512, kafkaUser, kafkaPassword),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close) // after the engine, which is cleaned up first
	return cluster
}

// securedConfig is the estate's configuration against brokers, with the
// kafka block given (kafka.brokers added) and files (ca.pem, client.pem,
// client.key) in the configuration's directory.
func securedConfig(t *testing.T, est estate, brokers []string, dir, kafka string) *config.Config {
	t.Helper()
	yaml := fmt.Sprintf(estateYAML, est.EHR, est.LabResults, est.Lab, est.EHRResults, est.Portal, est.Admin, est.HTTP, est.BreakerOpenFor)
	block := fmt.Sprintf("kafka:\n  partitions: 3\n  brokers: [%s]\n%s\n", strings.Join(brokers, ", "), kafka)
	yaml = strings.Replace(yaml, "kafka:\n  partitions: 3\n", block, 1)
	path := filepath.Join(dir, "careflow.yaml")
	write(t, path, []byte(yaml))
	env := func(name string) (string, bool) {
		switch name {
		case "KAFKA_PASSWORD":
			return kafkaPassword, true
		case "KAFKA_WRONG_PASSWORD":
			return "wrong-horse-staple", true
		}
		return "", false
	}
	cfg, err := config.Load(path, config.WithLookupEnv(env),
		config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// mutualTLS is a kafka.tls block trusting the CA in ca.pem and presenting
// client.pem.
const mutualTLS = "  tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key}"

// pkiDir writes ca's certificate and a client certificate it signed.
func pkiDir(t *testing.T, ca *testpki.CA) string {
	t.Helper()
	dir := t.TempDir()
	ca.WriteCA(t, dir, "ca")
	testpki.WritePEM(t, dir, "client", ca.Issue(t, testpki.Leaf{Use: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	return dir
}

// Against a cluster that requires TLS with a client certificate and SASL,
// each mechanism carries a message through every stage: the ingest
// producer, the stage sessions and their dedup loaders all authenticate.
func TestSecuredKafkaEndToEnd(t *testing.T) {
	ca := testpki.NewCA(t, "careflow test kafka CA")
	for i, mech := range []string{config.SASLScramSHA512, config.SASLScramSHA256, config.SASLPlain} {
		t.Run(mech, func(t *testing.T) {
			cluster := securedCluster(t, ca)
			est := newEstate(t)
			lab := startReceiver(t, est.Lab)
			startReceiver(t, est.EHRResults)
			startPortal(t, est.Portal)
			sasl := fmt.Sprintf("  sasl: {mechanism: %s, username: %s, password: {env: KAFKA_PASSWORD}}", mech, kafkaUser)
			cfg := securedConfig(t, est, cluster.ListenAddrs(), pkiDir(t, ca), mutualTLS+"\n"+sasl)

			ctx, cancel := context.WithCancel(context.Background())
			eng, err := engine.Start(ctx, engine.Options{Config: cfg, DataDir: t.TempDir(), InstanceID: "secured"})
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cancel()
				if err := eng.Wait(); err != nil {
					t.Errorf("engine stopped with %v", err)
				}
			})
			c := &mllp.Client{Addr: est.EHR, ACKTimeout: 10 * time.Second}
			defer c.Close()
			placer := fmt.Sprintf("SEC%d", i)
			if ack := send(t, c, orm("SECURE1", "SEC-"+placer, placer)); ack.Code != "AA" {
				t.Fatalf("ACK %s, want AA", ack.Code)
			}
			await.For(t, 30*time.Second, 20*time.Millisecond, func() error {
				for _, m := range lab.messages() {
					if m.Get("ORC-2.1") == placer {
						return nil
					}
				}
				return fmt.Errorf("lab has not received order %s", placer)
			})
		})
	}
}

// A refused certificate or credential stops the start at once with a
// message naming the key to edit, and never shows the password.
func TestSecuredKafkaRefused(t *testing.T) {
	ca := testpki.NewCA(t, "careflow test kafka CA")
	cluster := securedCluster(t, ca)
	dir := pkiDir(t, ca)
	other := testpki.NewCA(t, "some other CA")
	write(t, filepath.Join(dir, "other-ca.pem"), other.PEM)

	scram := func(user, env string) string {
		return fmt.Sprintf("  sasl: {mechanism: SCRAM-SHA-256, username: %s, password: {env: %s}}", user, env)
	}
	cases := []struct {
		name, kafka string
		want        []string
	}{
		{"wrong password", mutualTLS + "\n" + scram(kafkaUser, "KAFKA_WRONG_PASSWORD"),
			[]string{`SASL authentication failed for user "careflow" with mechanism SCRAM-SHA-256`, "env:KAFKA_WRONG_PASSWORD"}},
		{"unknown user", mutualTLS + "\n" + scram("nobody", "KAFKA_PASSWORD"),
			[]string{`SASL authentication failed for user "nobody" with mechanism SCRAM-SHA-256`}},
		{"wrong PLAIN password", mutualTLS + "\n  sasl: {mechanism: PLAIN, username: careflow, password: {env: KAFKA_WRONG_PASSWORD}}",
			[]string{`SASL authentication failed for user "careflow" with mechanism PLAIN`}},
		{"brokers' CA not trusted", "  tls: {ca_file: other-ca.pem, cert_file: client.pem, key_file: client.key}\n" + scram(kafkaUser, "KAFKA_PASSWORD"),
			[]string{"not signed by a CA careflow trusts", "kafka.tls.ca_file"}},
		{"name not in the brokers' certificate", "  tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key, server_name: kafka.hospital.internal}\n" + scram(kafkaUser, "KAFKA_PASSWORD"),
			[]string{`does not carry kafka.tls.server_name "kafka.hospital.internal"`}},
		{"no client certificate", "  tls: {ca_file: ca.pem}\n" + scram(kafkaUser, "KAFKA_PASSWORD"),
			[]string{"refused careflow's TLS connection", "kafka.tls.cert_file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := securedConfig(t, newEstate(t), cluster.ListenAddrs(), dir, tc.kafka)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			eng, err := engine.Start(ctx, engine.Options{Config: cfg, DataDir: t.TempDir(), InstanceID: "refused"})
			if err == nil {
				cancel()
				_ = eng.Wait()
				t.Fatal("engine started with settings the brokers refuse")
			}
			// Well inside the 30 s the clients would otherwise retry for.
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("refusal took %v to report", d)
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q\nwant it to contain %q", msg, w)
				}
			}
			for _, secret := range []string{kafkaPassword, "wrong-horse-staple"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error shows a password: %q", msg)
				}
			}
		})
	}
}
