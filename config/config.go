// Package config reads careflow's one YAML file into one validated Config.
//
// Configuration is data: interface analysts edit these files, so every
// mistake is reported with its file, line and key, all at once (see
// Problems). Unknown keys are mistakes, not silently ignored. Defaults live
// in defaults.go and nowhere else. Secrets (destination header values, TLS
// key passwords, the Kafka SASL password) are never written in the file: the
// file says where to find them ({env: NAME} or {file: PATH}) and Load
// resolves them.
//
// Relative paths in the file (TLS files, secret files, kafka.data_dir) are
// relative to the directory holding the file, so a configuration works the
// same whatever directory careflow is started from.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/careflow-health/careflow/avro"
)

// Config is a whole careflow configuration. Load and Parse return it
// validated and with defaults applied.
type Config struct {
	Kafka        Kafka         `yaml:"kafka"`
	Admin        Admin         `yaml:"admin"`
	HTTP         HTTPListener  `yaml:"http"`
	Inbound      []Inbound     `yaml:"inbound"`
	Destinations []Destination `yaml:"destinations"`
	Routes       []Route       `yaml:"routes"`
	Analytics    Analytics     `yaml:"analytics"`
	Auth         Auth          `yaml:"auth"`
	// Identity is the identifier policy every interface keys patients by,
	// unless it gives its own trust list (docs/identity.md).
	Identity Identity `yaml:"identity"`
	// Ownership is the source-of-truth matrix (config/ownership.go).
	Ownership Ownership `yaml:"ownership"`
	// Codes are the code maps normalise applies (docs/codes.md, codes.go).
	Codes []CodeMap `yaml:"codes"`
	// FHIR is what FHIR interfaces and destinations share (fhir.go).
	FHIR FHIR `yaml:"fhir"`
	// Console is the operators' web console on the admin port (console.go).
	Console Console `yaml:"console"`

	// Path is the file the configuration came from, as given to Load (or
	// the name given to Parse).
	Path string `yaml:"-"`
	// SHA256 is the hash of the file's bytes, in hex: what the audit trail
	// records as the configuration loaded.
	SHA256 string `yaml:"-"`

	warnings Problems
}

// Kafka says which Kafka cluster careflow uses and how it lays out its
// topics.
type Kafka struct {
	// Brokers are host:port seeds of an external cluster. Empty means
	// careflow runs its own embedded single-node broker.
	Brokers []string `yaml:"brokers"`
	// Listen is the embedded broker's address (embedded broker only).
	Listen string `yaml:"listen"`
	// DataDir is where the embedded broker keeps its log (embedded broker
	// only). Relative to the configuration file's directory.
	DataDir string `yaml:"data_dir"`
	// Partitions is the partition count of every topic careflow creates.
	Partitions int `yaml:"partitions"`
	// Replication is the replication factor of every topic careflow
	// creates (external cluster only; the embedded broker has one node).
	Replication int `yaml:"replication"`
	// SyncWrites makes the embedded broker fsync each write: safe against
	// power loss, about ten times slower.
	SyncWrites bool `yaml:"sync_writes"`
	// TransactionRecords caps the records one stage transaction holds.
	TransactionRecords int `yaml:"transaction_records"`
	// TLS encrypts the connections to an external cluster: CAFile
	// verifies the brokers, CertFile with KeyFile is a client certificate
	// (mutual TLS). nil: plaintext.
	TLS *TLS `yaml:"tls"`
	// SASL authenticates careflow to an external cluster. nil: none.
	SASL *KafkaSASL `yaml:"sasl"`
}

// Embedded reports whether careflow runs its own broker.
func (k Kafka) Embedded() bool { return len(k.Brokers) == 0 }

// Admin is the operations endpoint: /metrics, /healthz, /readyz and the
// schema registry. Anonymous clients may only read; writes (a schema
// registration) need one of Tokens.
type Admin struct {
	Listen string `yaml:"listen"`
	// TLS serves the endpoint over HTTPS; ClientCAFile makes it ask for
	// (not require) client certificates. nil: plain HTTP.
	TLS *TLS `yaml:"tls"`
	// Tokens are the bearer tokens allowed to write. None: nobody may
	// write over HTTP (careflow registers its own schemas in-process).
	Tokens []Token `yaml:"tokens"`
}

// HTTPListener is the HTTP ingest endpoint: POST /hl7/{interface}.
type HTTPListener struct {
	// Listen is host:port; "" turns HTTP ingest off.
	Listen string `yaml:"listen"`
	// TLS serves ingest over HTTPS; ClientCAFile verifies the client
	// certificates senders present (writers.certificates). nil: plain.
	TLS *TLS `yaml:"tls"`
}

// Enabled reports whether HTTP ingest is served.
func (h HTTPListener) Enabled() bool { return h.Listen != "" }

// Inbound is one interface that sends messages to careflow.
type Inbound struct {
	Name string `yaml:"name"`
	// Transport is "mllp" (a listener on Listen), "http" (only POST
	// /hl7/{name} on the HTTP listener, which every interface also has) or
	// "fhir" (a FHIR R4 REST base at /fhir/{name}/ on the HTTP listener).
	Transport      string        `yaml:"transport"`
	Listen         string        `yaml:"listen"`
	MaxMessageSize int           `yaml:"max_message_size,size"` // bytes
	ReadTimeout    time.Duration `yaml:"read_timeout"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`
	// FirstByteTimeout closes a connection that sends nothing this long
	// after it opens (after its TLS handshake).
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
	// HandshakeTimeout bounds a TLS handshake.
	HandshakeTimeout      time.Duration `yaml:"handshake_timeout"`
	MaxConnections        int           `yaml:"max_connections"`
	MaxConnectionsPerPeer int           `yaml:"max_connections_per_peer"`
	TLS                   *TLS          `yaml:"tls"` // nil: plain TCP
	// HTTP makes an mllp interface writable over POST /hl7/{name} too. An
	// http interface always is.
	HTTP bool `yaml:"http"`
	// Writers says who may write to the interface.
	Writers Writers `yaml:"writers"`
	// Charset is the character set assumed when a message's MSH-18 is
	// empty.
	Charset string `yaml:"charset"`
	// Ack is when a sender hears back: AckValidated (the default) after
	// the interface's accept rules ran, AckCommit as soon as Kafka has the
	// message.
	Ack    string `yaml:"ack"`
	Accept Accept `yaml:"accept"`
	// DedupWindow is how long a message's idempotency key is remembered,
	// so that a resend within it is recognised as a duplicate.
	DedupWindow time.Duration `yaml:"dedup_window"`

	// The return path (docs/workflows.md).

	// ReplyTo names the destination that carries careflow's answers back
	// to this interface's sender: application acknowledgements when a
	// message asks for one (enhanced mode, MSH-16 AL or ER) and return
	// notifications about the orders it placed. "" sends neither.
	ReplyTo string `yaml:"reply_to"`
	// ReplyTimeout is how long an application acknowledgement waits for
	// every destination's answer before it is sent as AE, "no answer
	// from DEST".
	ReplyTimeout time.Duration `yaml:"reply_timeout"`
	// CorrelationWait is how long a result that names an order careflow
	// does not know (yet) waits for that order: results can overtake
	// their orders. 0 raises result_for_unknown_order at once.
	CorrelationWait time.Duration `yaml:"correlation_wait"`
	// UnknownOrder is what becomes of such a result once the wait is
	// over: UnknownOrderDeliver (the default) or UnknownOrderHold.
	UnknownOrder string `yaml:"unknown_order"`
	// OutOfOrder is what becomes of an ADT update older than the last one
	// applied for its patient: `reject` (the default: not delivered,
	// stale_update), or `{hold: 30s}`: every ADT message of the interface
	// waits that long and each patient's are routed in event-time order,
	// so an update overtaken by less than the hold is re-sequenced.
	OutOfOrder OutOfOrder `yaml:"out_of_order"`
	// Trust replaces identity.trust for this interface, where a source
	// knows patients by other identifiers than the rest.
	Trust []TrustedIdentifier `yaml:"trust"`
	// Resources are the FHIR resource types a fhir interface takes; empty:
	// every type careflow normalises (docs/fhir.md).
	Resources []string `yaml:"resources"`
}

// OutOfOrder is an interface's out_of_order: a zero Hold rejects.
type OutOfOrder struct {
	Hold time.Duration `yaml:"hold"`
}

// Identity is the identifier policy: the PID-3 identifiers trusted to say
// who a patient is, most trusted first. Empty: the patient key is the
// first identifier with an assigning authority.
type Identity struct {
	Trust []TrustedIdentifier `yaml:"trust"`
}

// TrustedIdentifier is one kind of identifier the policy trusts: by type
// code (CX.5: NH, MR, PI, ...) and assigning authority (CX.4.1), either
// of which may be left out to match any, and the check-digit scheme of its
// numbers (nhs, chi; none when empty).
type TrustedIdentifier struct {
	Type      string `yaml:"type"`
	Authority string `yaml:"authority"`
	Check     string `yaml:"check"`
}

// TrustFor is the trust list interface in keys patients by: its own, else
// the configuration's.
func (c *Config) TrustFor(in Inbound) []TrustedIdentifier {
	if len(in.Trust) > 0 {
		return in.Trust
	}
	return c.Identity.Trust
}

// What becomes of a result for an order careflow does not know.
const (
	UnknownOrderDeliver = "deliver" // routed like any result, beside the exception
	UnknownOrderHold    = "hold"    // not routed: the exception is its record
)

// Ack modes of an inbound interface.
const (
	// AckCommit answers AA (CA) once the message is in Kafka; a message
	// that fails the accept rules is dead-lettered by validate afterwards,
	// and the sender is not told.
	AckCommit = "commit"
	// AckValidated answers once the accept rules ran as well: AA (CA) when
	// the message passes, AE (CE) with an ERR segment naming the rule and
	// its location when it fails. Either way it is stored first.
	AckValidated = "validated"
)

// HTTPWritable reports whether the interface accepts POST /hl7/{name}.
func (in Inbound) HTTPWritable() bool { return in.Transport == avro.TransportHTTP || in.HTTP }

// FHIRWritable reports whether the interface is a FHIR R4 REST base.
func (in Inbound) FHIRWritable() bool { return in.Transport == avro.TransportFHIR }

// Accept holds an interface's conformance rules, applied by the validate
// stage and, for `ack: validated`, by ingest before it answers.
type Accept struct {
	// MessageTypes are patterns "ADT^A01" or "ADT^*"; empty accepts any.
	MessageTypes []string `yaml:"message_types"`
	// Versions are MSH-12 values; empty accepts any 2.x.
	Versions []string `yaml:"versions"`
	// Required maps a message type pattern to the segments ("PID") and
	// fields ("PID-3", "PID-3[1].1") a message of that type must carry.
	// The rules of every pattern a message matches apply.
	Required map[string][]string `yaml:"required"`
}

// Destination is one system careflow delivers to.
type Destination struct {
	Name      string `yaml:"name"`
	Transport string `yaml:"transport"` // "mllp", "http" or "fhir"
	Address   string `yaml:"address"`   // host:port, mllp only
	URL       string `yaml:"url"`       // http or https URL (a FHIR base for fhir)
	Format    string `yaml:"format"`    // "hl7v2" or "json" (json over http only); fhir for fhir
	// SMART authenticates a fhir destination's requests with SMART
	// Backend Services; nil sends none (or Headers' static ones).
	SMART *SMART `yaml:"smart"`
	// HL7Version is written to MSH-12 of messages sent in hl7v2 format.
	HL7Version           string `yaml:"hl7_version"`
	SendingApplication   string `yaml:"sending_application"`
	SendingFacility      string `yaml:"sending_facility"`
	ReceivingApplication string `yaml:"receiving_application"`
	ReceivingFacility    string `yaml:"receiving_facility"`
	// Charset is the character set messages are written in (hl7v2; JSON
	// is always UTF-8).
	Charset string `yaml:"charset"`
	// Fields is the allow-list of canonical fields this destination may
	// receive; nil: all of them.
	Fields []string `yaml:"fields"`

	AckTimeout     time.Duration     `yaml:"ack_timeout"`
	ConnectTimeout time.Duration     `yaml:"connect_timeout"`
	Headers        map[string]Secret `yaml:"headers"` // http only
	TLS            *TLS              `yaml:"tls"`     // nil: plain TCP, or the system roots for an https URL
	Retry          Retry             `yaml:"retry"`
	Breaker        Breaker           `yaml:"breaker"`
	// SLA is the target time from ingest to delivery at this destination.
	SLA time.Duration `yaml:"sla"`
}

// Retry is the backoff between attempts after a transient failure: the
// first wait is Initial, each next one Multiplier times longer, capped at
// Max.
type Retry struct {
	Initial    time.Duration `yaml:"initial"`
	Max        time.Duration `yaml:"max"`
	Multiplier float64       `yaml:"multiplier"`
}

// Breaker is a destination's circuit breaker: after Failures consecutive
// transient failures it opens, and after OpenFor it lets one trial through.
type Breaker struct {
	Failures int           `yaml:"failures"`
	OpenFor  time.Duration `yaml:"open_for"`
}

// TLS is a listener's or a client's TLS settings. On an inbound interface
// CertFile and KeyFile are required and ClientCAFile turns on mutual TLS. On
// a destination CAFile replaces the system roots, ServerName overrides the
// name checked, and CertFile with KeyFile present a client certificate.
type TLS struct {
	CertFile     string  `yaml:"cert_file"`
	KeyFile      string  `yaml:"key_file"`
	KeyPassword  *Secret `yaml:"key_password"` // for an encrypted PEM key; nil when none
	ClientCAFile string  `yaml:"client_ca_file"`
	CAFile       string  `yaml:"ca_file"`
	ServerName   string  `yaml:"server_name"`
}

// Route sends the events a CEL expression selects to one destination.
type Route struct {
	Name        string `yaml:"name"`
	Destination string `yaml:"destination"`
	// When is a CEL expression over the variable event (the
	// ClinicalEvent, as a map keyed by its JSON field names).
	When string `yaml:"when"`
	// SLA overrides the destination's SLA for events taken by this route;
	// Load sets it to the destination's when the file leaves it out.
	SLA time.Duration `yaml:"sla"`
	// Expect is how soon the orders this route sends should be accepted
	// and resulted (docs/workflows.md, "Timeliness"). nil expects nothing.
	Expect *Expect `yaml:"expect"`
}

// Expect is a route's timeliness expectation for its orders, counted from
// when each is placed: a default, and overrides by the order's priority
// as sent (OBR-27.6, ORC-7.6 or TQ1-9), e.g. S for stat.
type Expect struct {
	AcceptedWithin time.Duration          `yaml:"accepted_within"`
	ResultedWithin time.Duration          `yaml:"resulted_within"`
	Priority       map[string]ExpectTimes `yaml:"priority"`
}

// ExpectTimes is one priority's expectation.
type ExpectTimes struct {
	AcceptedWithin time.Duration `yaml:"accepted_within"`
	ResultedWithin time.Duration `yaml:"resulted_within"`
}

// Option changes how Load and Parse work.
type Option func(*options)

type options struct {
	exprCheck func(string) error
	lookupEnv func(string) (string, bool)
}

// WithExprCheck lets the caller compile each route's when expression; an
// error it returns is reported at the when key's line. Default: expressions
// are only checked to be non-empty.
func WithExprCheck(check func(expr string) error) Option {
	return func(o *options) { o.exprCheck = check }
}

// WithLookupEnv replaces the environment that {env: NAME} secrets are read
// from. Default: os.LookupEnv.
func WithLookupEnv(lookup func(name string) (string, bool)) Option {
	return func(o *options) { o.lookupEnv = lookup }
}

// Load reads and validates the configuration file at path. When the file is
// wrong the error is Problems; when it cannot be read it is a wrapped
// *fs.PathError.
func Load(path string, opts ...Option) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(path, data, opts...)
}

// Parse validates the configuration in data. name is the file it came from:
// it is used in Problems and relative paths are resolved against its
// directory.
func Parse(name string, data []byte, opts ...Option) (*Config, error) {
	o := options{lookupEnv: os.LookupEnv}
	for _, opt := range opts {
		opt(&o)
	}
	d := newDecoder(name, filepath.Dir(name), o)
	c := Defaults()
	if d.decodeFile(data, &c) {
		d.validate(&c)
	}
	if len(d.problems) > 0 {
		d.problems.sort()
		return nil, d.problems
	}
	d.findWarnings(&c)
	d.warnings.sort()
	c.warnings = d.warnings
	c.Path = name
	sum := sha256.Sum256(data)
	c.SHA256 = hex.EncodeToString(sum[:])
	c.resolve(filepath.Dir(name))
	return &c, nil
}

// Destination returns the destination called name.
func (c *Config) Destination(name string) (Destination, bool) {
	for _, d := range c.Destinations {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}

// InboundByName returns the inbound interface called name.
func (c *Config) InboundByName(name string) (Inbound, bool) {
	for _, in := range c.Inbound {
		if in.Name == name {
			return in, true
		}
	}
	return Inbound{}, false
}

// RoutesTo returns the routes whose destination is dest, in file order.
func (c *Config) RoutesTo(dest string) []Route {
	var out []Route
	for _, r := range c.Routes {
		if r.Destination == dest {
			out = append(out, r)
		}
	}
	return out
}

// resolve fills what follows from other keys once the file is known to be
// valid: route SLAs inherited from their destination, and relative paths
// made relative to the configuration file's directory.
func (c *Config) resolve(dir string) {
	for i, r := range c.Routes {
		if r.SLA == 0 {
			if d, ok := c.Destination(r.Destination); ok {
				c.Routes[i].SLA = d.SLA
			}
		}
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Kafka.DataDir)
	abs(&c.Console.UsersFile)
	for i := range c.Auth.Issuers {
		abs(&c.Auth.Issuers[i].JWKSFile)
	}
	for i, d := range c.Destinations {
		if d.Transport == avro.TransportFHIR {
			c.Destinations[i].Format = avro.FormatFHIR
		}
		if d.SMART != nil {
			abs(&d.SMART.KeyFile)
		}
	}
	for i, in := range c.Inbound {
		if j := in.Writers.JWT; j != nil && j.Scope == "" {
			c.Inbound[i].Writers.JWT.Scope = DefaultScope(in.Name)
		}
		// Left to their defaults, the per-peer limit and the first-byte
		// wait follow a lower max_connections or idle_timeout.
		c.Inbound[i].MaxConnectionsPerPeer = min(in.MaxConnectionsPerPeer, in.MaxConnections)
		c.Inbound[i].FirstByteTimeout = min(in.FirstByteTimeout, in.IdleTimeout)
	}
	for _, t := range c.tlsBlocks() {
		abs(&t.CertFile)
		abs(&t.KeyFile)
		abs(&t.ClientCAFile)
		abs(&t.CAFile)
	}
}

func (c *Config) tlsBlocks() []*TLS {
	var out []*TLS
	for _, t := range []*TLS{c.Kafka.TLS, c.Admin.TLS, c.HTTP.TLS} {
		if t != nil {
			out = append(out, t)
		}
	}
	for _, in := range c.Inbound {
		if in.TLS != nil {
			out = append(out, in.TLS)
		}
	}
	for _, d := range c.Destinations {
		if d.TLS != nil {
			out = append(out, d.TLS)
		}
	}
	return out
}
