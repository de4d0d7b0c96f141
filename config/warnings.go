// This file finds what is allowed but unsafe: a listener that anyone on the
// network can write to or read from. `careflow check` prints these as
// warnings, and the engine logs them at start; they do not stop careflow,
// because a pilot on an isolated network may want exactly that.

package config

import (
	"fmt"

	"github.com/careflow-health/careflow/avro"
)

// Warnings are the configuration's allowed but unsafe settings, each at the
// line of its key, in file order.
func (c *Config) Warnings() Problems { return c.warnings }

func (d *decoder) warn(path, msg string) {
	d.warnings = append(d.warnings, Problem{Pos: d.lookup(path), Key: path, Msg: msg})
}

func (d *decoder) findWarnings(c *Config) {
	k := c.Kafka
	if k.Embedded() && k.Listen != "" && !IsLoopback(k.Listen) {
		d.warn("kafka.listen", fmt.Sprintf("the embedded broker has no authentication: anyone who can reach %s reads and writes every topic, "+
			"and every topic holds patient data; keep it on 127.0.0.1, or use an external cluster with kafka.tls and kafka.sasl", k.Listen))
	}
	if c.Admin.Listen != "" && !IsLoopback(c.Admin.Listen) && c.Admin.TLS == nil {
		d.warn("admin.listen", fmt.Sprintf("the admin endpoint on %s is plain HTTP on the network: add admin.tls, "+
			"or admin tokens cross the network in clear text", c.Admin.Listen))
	}
	httpOpen := c.HTTP.Enabled() && !IsLoopback(c.HTTP.Listen)
	if httpOpen && c.HTTP.TLS == nil {
		d.warn("http.listen", fmt.Sprintf("HTTP ingest on %s is not encrypted: messages and bearer tokens cross the network in clear text; add http.tls", c.HTTP.Listen))
	}
	for i, in := range c.Inbound {
		p := fmt.Sprintf("inbound[%d]", i)
		w := in.Writers
		if in.Transport == avro.TransportMLLP && in.Listen != "" && !IsLoopback(in.Listen) {
			switch {
			case in.TLS == nil && len(w.Addresses) == 0:
				d.warn(p+".listen", fmt.Sprintf("anyone who can reach %s can write to interface %s, unencrypted: "+
					"add tls with client_ca_file (mutual TLS), or at least writers.addresses", in.Listen, in.Name))
			case in.TLS == nil:
				d.warn(p+".listen", fmt.Sprintf("messages to interface %s cross the network unencrypted: add tls", in.Name))
			case in.TLS.ClientCAFile == "" && len(w.Addresses) == 0:
				d.warn(p+".tls", fmt.Sprintf("anyone who can reach %s can write to interface %s: add client_ca_file (mutual TLS) or writers.addresses", in.Listen, in.Name))
			}
		}
		if (in.HTTPWritable() || in.FHIRWritable()) && httpOpen && !w.HasCredentials() && len(w.Addresses) == 0 {
			key := p + ".http"
			if in.Transport != avro.TransportMLLP {
				key = p + ".name"
			}
			d.warn(key, fmt.Sprintf("anyone who can reach http.listen (%s) can write to interface %s: give writers.tokens or writers.jwt", c.HTTP.Listen, in.Name))
		}
	}
}
