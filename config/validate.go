// This file checks what a decoded configuration means: names, addresses,
// references between routes and destinations, HL7 rules, and that no two
// listeners claim one port. Each check reports at the line of the key it
// concerns.

package config

import (
	"fmt"
	"github.com/careflow-health/careflow/stages/identity"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
)

var (
	namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	// MSH-9 patterns: ADT^A01 or ADT^* (trigger wildcard).
	messageTypePattern = regexp.MustCompile(`^[A-Z][A-Z0-9]{2}\^([A-Z0-9]{3}|\*)$`)
	// HL7 v2 versions careflow knows: 2.1 to 2.8 with optional point
	// releases (2.3.1, 2.5.1, 2.8.2).
	versionPattern = regexp.MustCompile(`^2\.[1-8](\.[1-9])?$`)
	// Segment (with optional occurrence), or field with optional
	// repetition, component and subcomponent: PID, OBR[2], PID-3, PID-3[2],
	// PID-3.1, PID-3[2].4.1. The same grammar as the validate stage's.
	hl7PathPattern = regexp.MustCompile(`^[A-Z][A-Z0-9]{2}(\[[1-9][0-9]*\])?(-[1-9][0-9]*(\[[1-9][0-9]*\])?(\.[1-9][0-9]*){0,2})?$`)
)

// listener is one address careflow listens on, for the port check.
type listener struct{ key, addr string }

func (d *decoder) validate(c *Config) {
	var listeners []listener
	listeners = append(listeners, d.validateKafka(c.Kafka)...)
	if d.listenAddr("admin.listen", c.Admin.Listen) {
		listeners = append(listeners, listener{"admin.listen", c.Admin.Listen})
	}
	d.validateListenerTLS("admin.tls", c.Admin.TLS)
	d.validateTokens("admin.tokens", c.Admin.Tokens)
	// An empty http.listen turns HTTP ingest off.
	if c.HTTP.Enabled() && d.listenAddr("http.listen", c.HTTP.Listen) {
		listeners = append(listeners, listener{"http.listen", c.HTTP.Listen})
	}
	if c.HTTP.TLS != nil && !c.HTTP.Enabled() {
		d.problemAt("http.tls", "applies only when http.listen is set")
	}
	d.validateListenerTLS("http.tls", c.HTTP.TLS)
	issuers := d.validateAuth(c.Auth)
	if len(c.Inbound) == 0 {
		d.problemAt("inbound", "at least one inbound interface is required")
	}
	names := map[string]string{}
	for i, in := range c.Inbound {
		p := fmt.Sprintf("inbound[%d]", i)
		d.checkName(p, in.Name, names)
		if l, ok := d.validateInbound(p, in); ok {
			listeners = append(listeners, l)
		}
		if (in.HTTPWritable() || in.FHIRWritable()) && !c.HTTP.Enabled() {
			key := p + ".http"
			if in.Transport != avro.TransportMLLP {
				key = p + ".transport"
			}
			d.problemAt(key, "HTTP writes need http.listen, which is empty (HTTP ingest is off)")
		}
		d.validateWriters(p, in, c.HTTP.TLS, issuers)
	}
	d.validateTrust("identity.trust", c.Identity.Trust)
	for i, in := range c.Inbound {
		d.validateTrust(fmt.Sprintf("inbound[%d].trust", i), in.Trust)
	}
	d.validateOwnership(c)
	d.validateCodes(c)
	d.checkPorts(listeners)
	d.validateAnalytics(c.Analytics)
	d.validateConsole(c.Console)

	dests := map[string]string{}
	var destNames []string
	for i, dst := range c.Destinations {
		p := fmt.Sprintf("destinations[%d]", i)
		d.checkName(p, dst.Name, dests)
		destNames = append(destNames, dst.Name)
		d.validateDestination(p, dst)
	}
	routes := map[string]string{}
	routed := map[string]bool{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		d.checkName(p, r.Name, routes)
		d.validateRoute(p, r, dests, destNames)
		routed[r.Destination] = true
	}
	d.validateReplies(c, dests, destNames, routed)
	for i, dst := range c.Destinations {
		if dst.Name != "" && !routed[dst.Name] {
			d.problemAt(fmt.Sprintf("destinations[%d].name", i),
				fmt.Sprintf("no route sends to destination %q; add a route or remove the destination", dst.Name))
		}
	}
}

// validateTrust checks an identifier trust list: each entry names a type
// or an authority, a known check-digit scheme, and no entry repeats
// another (the second could never be reached).
func (d *decoder) validateTrust(p string, trust []TrustedIdentifier) {
	seen := map[string]int{}
	for i, t := range trust {
		tp := fmt.Sprintf("%s[%d]", p, i)
		if strings.TrimSpace(t.Type) == "" && strings.TrimSpace(t.Authority) == "" {
			d.problemAt(tp, "give the identifier's type (CX.5, e.g. NH or MR), its assigning authority (CX.4, e.g. NHS or HOSP), or both")
			continue
		}
		if t.Check != "" && !slices.Contains(identity.CheckSchemes(), t.Check) {
			d.problemAt(tp+".check", fmt.Sprintf("unknown check-digit scheme %q%s (known: %s)", t.Check,
				suggest(t.Check, identity.CheckSchemes()), strings.Join(identity.CheckSchemes(), ", ")))
		}
		k := strings.ToUpper(t.Type + "^" + t.Authority)
		if j, dup := seen[k]; dup {
			d.problemAt(tp, fmt.Sprintf("the same identifier as %s[%d]", p, j))
		}
		seen[k] = i
	}
}

// validateReplies checks every reply_to: it must name an HL7 v2
// destination (acknowledgements are HL7 messages), and that destination
// counts as sent to, so needs no route of its own.
func (d *decoder) validateReplies(c *Config, dests map[string]string, destNames []string, routed map[string]bool) {
	formats := map[string]string{}
	fields := map[string][]string{}
	for _, dst := range c.Destinations {
		formats[dst.Name] = dst.Format
		fields[dst.Name] = dst.Fields
	}
	for i, in := range c.Inbound {
		if in.ReplyTo == "" {
			continue
		}
		p := fmt.Sprintf("inbound[%d].reply_to", i)
		if _, ok := dests[in.ReplyTo]; !ok {
			d.problemAt(p, fmt.Sprintf("unknown destination %q%s", in.ReplyTo, suggest(in.ReplyTo, destNames)))
			continue
		}
		if formats[in.ReplyTo] != avro.FormatHL7v2 {
			d.problemAt(p, fmt.Sprintf("destination %q takes %s; acknowledgements and notifications are HL7 v2 messages, so reply_to needs an hl7v2 destination", in.ReplyTo, formats[in.ReplyTo]))
		}
		if f := fields[in.ReplyTo]; len(f) > 0 && !slices.Contains(f, "acknowledgment") {
			d.problemAt(p, fmt.Sprintf("destination %q has a fields list without acknowledgment, which every acknowledgement and notification is made of: add it", in.ReplyTo))
		}
		routed[in.ReplyTo] = true
	}
}

// checkName checks that the name at path+".name" is well formed and not
// already in seen (name → key path of its first use).
func (d *decoder) checkName(path, name string, seen map[string]string) {
	key := path + ".name"
	switch {
	case name == "":
		d.problemAt(key, "name is required")
	case !namePattern.MatchString(name):
		d.problemAt(key, fmt.Sprintf("name %q must be lower-case letters, digits and dashes", name))
	default:
		if first, dup := seen[name]; dup {
			d.problemAt(key, fmt.Sprintf("name %q is already used by %s (line %d)", name, first, d.lookup(first).Line))
			return
		}
		seen[name] = key
	}
}

func (d *decoder) validateKafka(k Kafka) []listener {
	for i, b := range k.Brokers {
		if err := checkHostPort(b, true); err != nil {
			d.problemAt(fmt.Sprintf("kafka.brokers[%d]", i), err.Error())
		}
	}
	if k.Partitions < 1 {
		d.problemAt("kafka.partitions", "must be at least 1")
	}
	if k.Replication < 1 {
		d.problemAt("kafka.replication", "must be at least 1")
	}
	if k.TransactionRecords < 1 {
		d.problemAt("kafka.transaction_records", "must be at least 1")
	}
	d.validateKafkaSecurity(k)
	if !k.Embedded() {
		if k.SyncWrites {
			d.problemAt("kafka.sync_writes", "applies only to the embedded broker (kafka.brokers is set); an external cluster's durability is its own setting")
		}
		return nil
	}
	if k.Replication > 1 {
		d.problemAt("kafka.replication", "the embedded broker has one node: replication must be 1 (or set kafka.brokers)")
	}
	if d.listenAddr("kafka.listen", k.Listen) {
		return []listener{{"kafka.listen", k.Listen}}
	}
	return nil
}

// listenAddr checks a host:port to listen on; an empty host means every
// interface and port 0 means any free port.
func (d *decoder) listenAddr(key, addr string) bool {
	if addr == "" {
		d.problemAt(key, "listen address is required (host:port)")
		return false
	}
	if err := checkHostPort(addr, false); err != nil {
		d.problemAt(key, err.Error())
		return false
	}
	return true
}

func checkHostPort(addr string, needHost bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	if needHost && host == "" {
		return fmt.Errorf("want host:port with a host, got %q", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (needHost && n == 0) {
		return fmt.Errorf("port %q is not a port number", port)
	}
	return nil
}

// checkPorts reports a listener whose port an earlier listener already
// has. Port 0 (any free port) never clashes.
func (d *decoder) checkPorts(ls []listener) {
	first := map[string]string{}
	for _, l := range ls {
		_, port, _ := net.SplitHostPort(l.addr)
		if port == "0" {
			continue
		}
		if prev, dup := first[port]; dup {
			d.problemAt(l.key, fmt.Sprintf("port %s is already used by %s (line %d)", port, prev, d.lookup(prev).Line))
			continue
		}
		first[port] = l.key
	}
}

func (d *decoder) validateInbound(p string, in Inbound) (listener, bool) {
	var l listener
	ok := false
	switch in.Transport {
	case avro.TransportMLLP:
		if d.listenAddr(p+".listen", in.Listen) {
			l, ok = listener{p + ".listen", in.Listen}, true
		}
	case avro.TransportHTTP:
		if in.Listen != "" {
			d.problemAt(p+".listen", "an http interface is served on http.listen at POST /hl7/"+in.Name+"; remove listen or use transport: mllp")
		}
		if in.TLS != nil {
			d.problemAt(p+".tls", "applies to mllp interfaces only")
		}
	case avro.TransportFHIR:
		d.validateFHIRInbound(p, in)
	default:
		d.problemAt(p+".transport", fmt.Sprintf("want mllp, http or fhir, got %q%s", in.Transport, suggest(in.Transport, []string{avro.TransportMLLP, avro.TransportHTTP, avro.TransportFHIR})))
	}
	if len(in.Resources) > 0 && in.Transport != avro.TransportFHIR {
		d.problemAt(p+".resources", "applies to fhir interfaces only")
	}
	if in.MaxConnections < 1 {
		d.problemAt(p+".max_connections", "must be at least 1")
	}
	// The defaults of these two follow their limits (resolve lowers
	// them), so only a value written in the file can be out of bounds.
	switch {
	case in.MaxConnectionsPerPeer < 1:
		d.problemAt(p+".max_connections_per_peer", "must be at least 1")
	case in.MaxConnectionsPerPeer > in.MaxConnections && in.MaxConnections >= 1 && d.written(p+".max_connections_per_peer"):
		d.problemAt(p+".max_connections_per_peer", fmt.Sprintf("must be at most max_connections (%d)", in.MaxConnections))
	}
	if in.FirstByteTimeout > in.IdleTimeout && d.written(p+".first_byte_timeout") {
		d.problemAt(p+".first_byte_timeout", fmt.Sprintf("must be at most idle_timeout (%s): it is the shorter wait for a connection that never sends", in.IdleTimeout))
	}
	if in.Transport == avro.TransportMLLP {
		d.validateListenerTLS(p+".tls", in.TLS)
	}
	if in.Transport != avro.TransportMLLP {
		for _, k := range []struct {
			key string
			set bool
		}{{"first_byte_timeout", d.written(p + ".first_byte_timeout")}, {"handshake_timeout", d.written(p + ".handshake_timeout")},
			{"max_connections_per_peer", d.written(p + ".max_connections_per_peer")}} {
			if k.set {
				d.problemAt(p+"."+k.key, "applies to mllp interfaces only (HTTP connections are the HTTP listener's)")
			}
		}
	}
	d.checkCharset(p+".charset", in.Charset)
	if in.Ack != AckCommit && in.Ack != AckValidated {
		d.problemAt(p+".ack", fmt.Sprintf("want validated or commit, got %q%s", in.Ack, suggest(in.Ack, []string{AckValidated, AckCommit})))
	}
	if in.UnknownOrder != UnknownOrderDeliver && in.UnknownOrder != UnknownOrderHold {
		d.problemAt(p+".unknown_order", fmt.Sprintf("want deliver or hold, got %q%s", in.UnknownOrder,
			suggest(in.UnknownOrder, []string{UnknownOrderDeliver, UnknownOrderHold})))
	}
	if in.ReplyTimeout <= 0 {
		d.problemAt(p+".reply_timeout", fmt.Sprintf("must be positive, got %s", in.ReplyTimeout))
	}
	if h := in.OutOfOrder.Hold; h < 0 || h > 10*time.Minute {
		d.problemAt(p+".out_of_order.hold", fmt.Sprintf("want a hold up to 10m (every ADT message of the interface waits it), got %s", h))
	}
	if in.CorrelationWait < 0 || in.CorrelationWait > 24*time.Hour {
		d.problemAt(p+".correlation_wait", fmt.Sprintf("want 0 (no wait) up to 24h, got %s", in.CorrelationWait))
	}
	a, ap := in.Accept, p+".accept"
	for i, mt := range a.MessageTypes {
		d.checkMessageType(fmt.Sprintf("%s.message_types[%d]", ap, i), mt)
	}
	for i, v := range a.Versions {
		if !versionPattern.MatchString(v) {
			d.problemAt(fmt.Sprintf("%s.versions[%d]", ap, i), fmt.Sprintf("want an HL7 v2 version from 2.1 to 2.8 such as \"2.5.1\", got %q", v))
		}
	}
	for pattern, paths := range a.Required {
		rp := fmt.Sprintf("%s.required[%q]", ap, pattern)
		d.checkMessageType(rp, pattern)
		for i, hp := range paths {
			if !hl7PathPattern.MatchString(hp) {
				d.problemAt(fmt.Sprintf("%s[%d]", rp, i), fmt.Sprintf("want a segment (PID) or field (PID-3, PID-3[2].1), got %q", hp))
			}
		}
	}
	return l, ok
}

// validateListenerTLS checks a listener's tls block (nil: none).
func (d *decoder) validateListenerTLS(tp string, t *TLS) {
	if t == nil {
		return
	}
	if t.CertFile == "" || t.KeyFile == "" {
		d.problemAt(tp, "a listener needs cert_file and key_file")
	}
	d.notFor(tp+".ca_file", t.CAFile, "listeners; use client_ca_file to verify client certificates")
	d.notFor(tp+".server_name", t.ServerName, "listeners")
	d.refuseKeyPassword(tp, t)
	d.checkFiles(tp, t)
}

// written reports whether the key at path is in the file.
func (d *decoder) written(path string) bool {
	_, ok := d.pos[path]
	return ok
}

func (d *decoder) checkMessageType(key, mt string) {
	if !messageTypePattern.MatchString(mt) {
		d.problemAt(key, fmt.Sprintf("want a message type such as \"ADT^A01\" or \"ADT^*\", got %q", mt))
	}
}

// notFor reports a TLS key set where it has no meaning.
func (d *decoder) notFor(key, val, where string) {
	if val != "" {
		d.problemAt(key, "does not apply to "+where)
	}
}

// refuseKeyPassword reports key_password, which the engine cannot use yet:
// better at `careflow check` than at the first connection.
func (d *decoder) refuseKeyPassword(path string, t *TLS) {
	if t.KeyPassword != nil {
		d.problemAt(path+".key_password", "encrypted private keys are not supported yet; decrypt the key file and protect it with file permissions")
	}
}

// checkFile checks that the file at key exists.
func (d *decoder) checkFile(key, file string) {
	p := file
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	if _, err := os.Stat(p); err != nil {
		d.problemAt(key, err.Error())
	}
}

// checkFiles checks that each TLS file named exists, so that a typo is
// found at load rather than at the first connection.
func (d *decoder) checkFiles(path string, t *TLS) {
	for _, f := range []struct{ key, file string }{
		{"cert_file", t.CertFile}, {"key_file", t.KeyFile},
		{"client_ca_file", t.ClientCAFile}, {"ca_file", t.CAFile},
	} {
		if f.file != "" {
			d.checkFile(path+"."+f.key, f.file)
		}
	}
}

func (d *decoder) validateDestination(p string, dst Destination) {
	switch dst.Transport {
	case avro.TransportMLLP:
		if dst.Address == "" {
			d.problemAt(p+".address", "an mllp destination needs address (host:port)")
		} else if err := checkHostPort(dst.Address, true); err != nil {
			d.problemAt(p+".address", err.Error())
		}
		d.notFor(p+".url", dst.URL, "mllp destinations; use address")
		if len(dst.Headers) > 0 {
			d.problemAt(p+".headers", "apply to http destinations only")
		}
		if dst.Format != avro.FormatHL7v2 {
			d.problemAt(p+".format", fmt.Sprintf("an mllp destination carries hl7v2, not %q", dst.Format))
		}
	case avro.TransportHTTP:
		d.checkURL(p+".url", dst.URL)
		d.notFor(p+".address", dst.Address, "http destinations; use url")
		if dst.Format != avro.FormatHL7v2 && dst.Format != avro.FormatJSON {
			d.problemAt(p+".format", fmt.Sprintf("want hl7v2 or json, got %q%s", dst.Format, suggest(dst.Format, []string{avro.FormatHL7v2, avro.FormatJSON})))
		}
		if dst.TLS != nil && strings.HasPrefix(dst.URL, "http://") {
			d.problemAt(p+".tls", "needs an https url")
		}
	case avro.TransportFHIR:
		d.validateFHIRDestination(p, dst)
	default:
		d.problemAt(p+".transport", fmt.Sprintf("want mllp, http or fhir, got %q%s", dst.Transport, suggest(dst.Transport, []string{avro.TransportMLLP, avro.TransportHTTP, avro.TransportFHIR})))
	}
	if dst.SMART != nil && dst.Transport != avro.TransportFHIR {
		d.problemAt(p+".smart", "applies to fhir destinations only")
	}
	d.checkDestinationCharset(p+".charset", dst.Charset)
	if dst.Format == avro.FormatJSON && d.written(p+".charset") && !isUTF8Name(dst.Charset) {
		d.problemAt(p+".charset", "JSON is always UTF-8 (RFC 8259); remove charset or use format: hl7v2")
	}
	d.checkFields(p+".fields", dst.Fields)
	if !versionPattern.MatchString(dst.HL7Version) {
		d.problemAt(p+".hl7_version", fmt.Sprintf("want an HL7 v2 version from 2.1 to 2.8 such as \"2.5.1\", got %q", dst.HL7Version))
	}
	for _, f := range []struct{ key, val string }{
		{"sending_application", dst.SendingApplication}, {"sending_facility", dst.SendingFacility},
		{"receiving_application", dst.ReceivingApplication}, {"receiving_facility", dst.ReceivingFacility},
	} {
		if strings.ContainsAny(f.val, "|^~\\&\r\n") {
			d.problemAt(p+"."+f.key, "must not contain HL7 delimiters | ^ ~ \\ &")
		}
	}
	if dst.Retry.Multiplier < 1 {
		d.problemAt(p+".retry.multiplier", "must be at least 1")
	}
	if dst.Retry.Max < dst.Retry.Initial {
		d.problemAt(p+".retry.max", fmt.Sprintf("must be at least retry.initial (%s)", dst.Retry.Initial))
	}
	if dst.Breaker.Failures < 1 {
		d.problemAt(p+".breaker.failures", "must be at least 1")
	}
	if t := dst.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			d.problemAt(p+".tls", "a client certificate needs both cert_file and key_file")
		}
		d.notFor(p+".tls.client_ca_file", t.ClientCAFile, "destinations; use ca_file to trust a private CA")
		d.refuseKeyPassword(p+".tls", t)
		d.checkFiles(p+".tls", t)
	}
}

func (d *decoder) checkURL(key, raw string) {
	if raw == "" {
		d.problemAt(key, "an http destination needs url (http:// or https://)")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.problemAt(key, fmt.Sprintf("want an http:// or https:// URL with a host, got %q", raw))
	}
}

func (d *decoder) validateRoute(p string, r Route, dests map[string]string, destNames []string) {
	switch {
	case r.Destination == "":
		d.problemAt(p+".destination", "destination is required")
	default:
		if _, ok := dests[r.Destination]; !ok {
			d.problemAt(p+".destination", fmt.Sprintf("unknown destination %q%s", r.Destination, suggest(r.Destination, destNames)))
		}
	}
	if strings.TrimSpace(r.When) == "" {
		d.problemAt(p+".when", "when is required (write 'true' to route every event)")
	} else if d.opts.exprCheck != nil {
		if err := d.opts.exprCheck(r.When); err != nil {
			d.problemAt(p+".when", oneLine(err.Error()))
		}
	}
	if e := r.Expect; e != nil {
		ep := p + ".expect"
		if e.AcceptedWithin == 0 && e.ResultedWithin == 0 && len(e.Priority) == 0 {
			d.problemAt(ep, "expects nothing: give accepted_within, resulted_within or priority overrides")
		}
		for prio, t := range e.Priority {
			pp := fmt.Sprintf("%s.priority[%q]", ep, prio)
			if strings.TrimSpace(prio) == "" {
				d.problemAt(pp, "a priority code is needed, as the order sends it in OBR-27.6 (S for stat, R for routine)")
			}
			if t.AcceptedWithin == 0 && t.ResultedWithin == 0 {
				d.problemAt(pp, "expects nothing: give accepted_within or resulted_within")
			}
		}
	}
}

// oneLine keeps a multi-line expression error on one line of Problems,
// dropping the source-and-caret lines CEL adds (the key's line is given).
func oneLine(msg string) string {
	var keep []string
	for _, l := range strings.Split(msg, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "|") {
			keep = append(keep, t)
		}
	}
	return strings.Join(keep, "; ")
}
