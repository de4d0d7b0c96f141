package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/careflow-health/careflow/config"
)

// accessCheckTimeout bounds the one connection kafkaOpts makes to check
// kafka.tls and kafka.sasl before anything else starts.
const accessCheckTimeout = 15 * time.Second

// kafkaOpts returns the options of every Kafka client the engine makes (the
// ingest producer, stage sessions, dedup loaders, the sink): base plus TLS
// and SASL from kafka.tls and kafka.sasl. When either is set it connects
// once, so that a certificate or credential the brokers refuse stops the
// start with a message saying what to fix: the clients themselves retry a
// refusal as if the network had failed, and the start would end at a
// timeout saying only EOF.
func (e *Engine) kafkaOpts(ctx context.Context, base ...kgo.Opt) ([]kgo.Opt, error) {
	k := e.cfg.Kafka
	if k.TLS == nil && k.SASL == nil {
		return base, nil
	}
	if e.broker != nil {
		return nil, errors.New("engine: kafka.tls and kafka.sasl apply only to an external cluster; set kafka.brokers")
	}
	sec, err := kafkaSecurity(k)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	opts := slices.Concat(base, sec)
	if err := checkKafkaAccess(ctx, k, e.brokers(), opts); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return opts, nil
}

// kafkaSecurity turns kafka.tls and kafka.sasl into client options.
func kafkaSecurity(k config.Kafka) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if t := k.TLS; t != nil {
		tc, err := clientTLS(t)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls: %w", err)
		}
		// An empty ServerName is filled per broker with the host dialled.
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if s := k.SASL; s != nil {
		m, err := saslMechanism(s)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func saslMechanism(s *config.KafkaSASL) (sasl.Mechanism, error) {
	if s.Username == "" || s.Password == nil || s.Password.Value() == "" {
		return nil, errors.New("kafka.sasl: username and password are required")
	}
	user, pass := s.Username, s.Password.Value()
	switch s.Mechanism {
	case config.SASLPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case config.SASLScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case config.SASLScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: want %s, %s or %s, got %q",
		config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512, s.Mechanism)
}

// checkKafkaAccess asks the brokers for metadata once with opts. A refusal
// of the certificate or credentials is returned in words naming the key to
// edit; any other failure (a broker not up yet) is left to the retries of
// the clients that follow.
func checkKafkaAccess(ctx context.Context, k config.Kafka, brokers []string, opts []kgo.Opt) error {
	w := &saslWatch{}
	cl, err := kgo.NewClient(append(slices.Clone(opts), kgo.WithHooks(w))...)
	if err != nil {
		return fmt.Errorf("kafka client for %v: %w", brokers, err)
	}
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, accessCheckTimeout)
	defer cancel()
	err = cl.Ping(cctx)
	switch {
	case err == nil, ctx.Err() != nil:
		return nil
	case k.TLS != nil && errors.Is(err, context.DeadlineExceeded):
		// A plaintext listener takes the TLS hello for the start of a
		// request and waits for the rest, so the handshake never ends.
		return fmt.Errorf("kafka %s: no broker completed a TLS handshake within %s: check that kafka.brokers gives the brokers' TLS listener "+
			"(a plaintext port never answers TLS) and that they are reachable", strings.Join(brokers, ","), accessCheckTimeout)
	}
	return refusal(k, strings.Join(brokers, ","), err, w.dropped.Load())
}

// saslWatch notes a SASL authentication the broker cut short. Kafka answers
// bad credentials with SASL_AUTHENTICATION_FAILED, but some brokers (kfake
// among them) close the connection instead, and the client then reports
// only EOF.
type saslWatch struct{ dropped atomic.Bool }

func (w *saslWatch) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil && key == int16(kmsg.SASLAuthenticate) {
		w.dropped.Store(true)
	}
}

// refusal explains err when it is the brokers refusing careflow's TLS or
// SASL settings, and returns nil for anything else. The password is never
// part of the message: it names where the password comes from.
func refusal(k config.Kafka, brokers string, err error, saslDropped bool) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		notTLS    tls.RecordHeaderError
		op        *net.OpError
	)
	switch s := k.SASL; {
	case s != nil && (errors.Is(err, kerr.SaslAuthenticationFailed) || saslDropped):
		detail := err.Error()
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			detail = "the broker closed the connection during authentication"
		}
		return fmt.Errorf("kafka %s: SASL authentication failed for user %q with mechanism %s: "+
			"check kafka.sasl.username, the password in %s, and that the cluster has this user for %s (%s)",
			brokers, s.Username, s.Mechanism, s.Password, s.Mechanism, detail)
	case s != nil && errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("kafka %s: the brokers do not offer SASL mechanism %s: set kafka.sasl.mechanism to one they do (%v)",
			brokers, s.Mechanism, err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("kafka %s: the brokers' certificate is not signed by a CA careflow trusts: "+
			"set kafka.tls.ca_file to the CA that signed it (%v)", brokers, err)
	case errors.As(err, &hostname) && k.TLS != nil && k.TLS.ServerName != "":
		return fmt.Errorf("kafka %s: the brokers' certificate does not carry kafka.tls.server_name %q: set it to a name the certificate carries (%v)",
			brokers, k.TLS.ServerName, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("kafka %s: the brokers' certificate does not carry the name careflow dialled: "+
			"give kafka.brokers by a name it carries, or set kafka.tls.server_name (%v)", brokers, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("kafka %s: the brokers' certificate is not valid (%v): it must be renewed or reissued, or this host's clock is wrong", brokers, err)
	case errors.As(err, &notTLS):
		return fmt.Errorf("kafka %s: the brokers do not speak TLS on this port: give their TLS listener in kafka.brokers, or remove kafka.tls (%v)",
			brokers, err)
	case k.TLS != nil && errors.As(err, &op) && op.Op == "remote error":
		return fmt.Errorf("kafka %s: the brokers refused careflow's TLS connection; if they require a client certificate, "+
			"set kafka.tls.cert_file and key_file to one signed by a CA they trust (%v)", brokers, err)
	}
	return nil
}

// KafkaClientOptions are the options a tool outside the engine (careflow
// exceptions, careflow orders) reaches the configuration's Kafka with:
// brokers, else kafka.brokers, else the embedded broker's kafka.listen;
// with kafka.tls and kafka.sasl for an external cluster.
func KafkaClientOptions(k config.Kafka, brokers []string) ([]kgo.Opt, error) {
	if len(brokers) == 0 {
		brokers = k.Brokers
	}
	if len(brokers) == 0 {
		brokers = []string{k.Listen}
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if k.Embedded() {
		return opts, nil
	}
	sec, err := kafkaSecurity(k)
	if err != nil {
		return nil, err
	}
	return append(opts, sec...), nil
}
