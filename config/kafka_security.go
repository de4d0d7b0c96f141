// This file holds how careflow reaches a secured external Kafka cluster:
// kafka.tls and kafka.sasl, and the checks that keep credentials off the
// network in clear text unless the file says, in so many words, that this is
// acceptable.

package config

import (
	"fmt"
	"slices"
	"strings"
)

// SASL mechanism names, as Kafka spells them.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

var saslMechanisms = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512}

// KafkaSASL is the identity careflow authenticates to an external cluster
// with.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string  `yaml:"mechanism"`
	Username  string  `yaml:"username"`
	Password  *Secret `yaml:"password"`
	// AllowPlaintext accepts PLAIN without kafka.tls, which sends the
	// password unencrypted. Only for a network the hospital trusts.
	AllowPlaintext bool `yaml:"allow_plaintext"`
}

func (d *decoder) validateKafkaSecurity(k Kafka) {
	if k.Embedded() {
		const msg = "applies only to an external cluster: set kafka.brokers (the embedded broker has neither TLS nor SASL)"
		if k.TLS != nil {
			d.problemAt("kafka.tls", msg)
		}
		if k.SASL != nil {
			d.problemAt("kafka.sasl", msg)
		}
		return
	}
	if t := k.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			d.problemAt("kafka.tls", "a client certificate needs both cert_file and key_file")
		}
		d.notFor("kafka.tls.client_ca_file", t.ClientCAFile, "the Kafka client; use ca_file to trust the brokers' CA")
		d.refuseKeyPassword("kafka.tls", t)
		d.checkFiles("kafka.tls", t)
	}
	s := k.SASL
	if s == nil {
		return
	}
	switch {
	case s.Mechanism == "":
		d.problemAt("kafka.sasl.mechanism", "mechanism is required: "+strings.Join(saslMechanisms, ", "))
	case !slices.Contains(saslMechanisms, s.Mechanism):
		d.problemAt("kafka.sasl.mechanism", fmt.Sprintf("want one of %s, got %q%s",
			strings.Join(saslMechanisms, ", "), s.Mechanism, suggest(s.Mechanism, saslMechanisms)))
	}
	if s.Username == "" {
		d.problemAt("kafka.sasl.username", "username is required")
	}
	// A password that was written but could not be resolved is already
	// reported where it is written.
	if _, written := d.pos["kafka.sasl.password"]; !written {
		d.problemAt("kafka.sasl.password", "password is required, as {env: NAME} or {file: PATH}")
	}
	switch {
	case s.Mechanism == SASLPlain && k.TLS == nil && !s.AllowPlaintext:
		d.problemAt("kafka.sasl.mechanism", "PLAIN without kafka.tls sends the password unencrypted: add a kafka.tls block, "+
			"or use SCRAM-SHA-512, or set kafka.sasl.allow_plaintext: true if the network to the brokers is trusted")
	case s.AllowPlaintext && k.TLS != nil:
		d.problemAt("kafka.sasl.allow_plaintext", "has no effect: kafka.tls encrypts the connection; remove it")
	case s.AllowPlaintext && s.Mechanism != SASLPlain:
		d.problemAt("kafka.sasl.allow_plaintext", "applies to mechanism PLAIN only (SCRAM never sends the password); remove it")
	}
}
