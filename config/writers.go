// This file holds who may write to careflow: the writers of each inbound
// interface (addresses, client certificates, sending applications and
// facilities, bearer tokens, JWTs), the JWT issuers they may come from, and
// the admin tokens. A write path into the clinical record must be
// authenticated, authorised and auditable; these are the keys that say how.

package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/careflow-health/careflow/avro"
)

// Writers says who may write to an inbound interface. Every kind that is
// set must hold (an address in Addresses and a sending application in
// SendingApplications, say); within a kind any entry will do. Tokens, JWT
// and Certificates are credentials: an HTTP write must present one of them
// when any is set.
type Writers struct {
	// Addresses are the source IPs or CIDR ranges writers connect from.
	Addresses []string `yaml:"addresses"`
	// Certificates match a verified client certificate: "CN=name" (its
	// subject common name), "DNS:name", "URI:uri", "IP:address" or
	// "EMAIL:address" (a subject alternative name), or a whole subject
	// ("CN=lab,O=Hospital").
	Certificates []string `yaml:"certificates"`
	// SendingApplications are MSH-3.1 values a message may carry.
	SendingApplications []string `yaml:"sending_applications"`
	// SendingFacilities are MSH-4.1 values a message may carry.
	SendingFacilities []string `yaml:"sending_facilities"`
	// Tokens are static bearer tokens HTTP writers may present.
	Tokens []Token `yaml:"tokens"`
	// JWT accepts bearer JWTs from an issuer in auth.issuers.
	JWT *JWTWriters `yaml:"jwt"`
}

// HasCredentials reports whether HTTP writers must present a credential.
func (w Writers) HasCredentials() bool {
	return len(w.Tokens) > 0 || w.JWT != nil || len(w.Certificates) > 0
}

// JWTWriters accepts JWTs signed by one issuer that grant one scope.
type JWTWriters struct {
	// Issuer is the name of an entry in auth.issuers.
	Issuer string `yaml:"issuer"`
	// Scope must be among the token's scopes ("scope" or "scp" claim).
	// Load sets it to careflow/{interface}.write when left out.
	Scope string `yaml:"scope"`
}

// Token is one static bearer token, known only by its SHA-256, so that
// the configuration (and the host careflow runs on) never holds the token
// itself. `careflow token new` makes one.
type Token struct {
	// Name says whose token it is; audit records and the writer of every
	// message it sends carry it.
	Name   string `yaml:"name"`
	SHA256 Digest `yaml:"sha256"`
}

// Digest is a SHA-256 hash written in hex, either in the file or, like a
// Secret, as {env: NAME} or {file: PATH}.
type Digest struct {
	Secret
	sum [32]byte
}

// Sum returns the hash, the only form of a token careflow holds.
func (d Digest) Sum() [32]byte { return d.sum }

// Auth holds what careflow needs to check credentials issued elsewhere.
type Auth struct {
	Issuers []Issuer `yaml:"issuers"`
}

// Issuer is a JWT issuer (an identity provider) whose keys careflow trusts.
type Issuer struct {
	Name string `yaml:"name"`
	// Issuer is the value tokens carry in their "iss" claim.
	Issuer string `yaml:"issuer"`
	// Audience must be among the tokens' "aud" values.
	Audience string `yaml:"audience"`
	// JWKSURL (https) or JWKSFile holds the issuer's public keys.
	JWKSURL  string `yaml:"jwks_url"`
	JWKSFile string `yaml:"jwks_file"`
}

// IssuerByName returns the issuer called name.
func (c *Config) IssuerByName(name string) (Issuer, bool) {
	for _, is := range c.Auth.Issuers {
		if is.Name == name {
			return is, true
		}
	}
	return Issuer{}, false
}

// DefaultScope is the scope a JWT needs to write to interface name when
// writers.jwt.scope is left out.
func DefaultScope(name string) string { return "careflow/" + name + ".write" }

func (d *decoder) validateAuth(a Auth) map[string]bool {
	names := map[string]string{}
	known := map[string]bool{}
	for i, is := range a.Issuers {
		p := fmt.Sprintf("auth.issuers[%d]", i)
		d.checkName(p, is.Name, names)
		known[is.Name] = true
		if is.Issuer == "" {
			d.problemAt(p+".issuer", "issuer is required: the \"iss\" claim of the tokens it signs")
		}
		if is.Audience == "" {
			d.problemAt(p+".audience", "audience is required: the \"aud\" value tokens for careflow carry")
		}
		switch {
		case is.JWKSURL == "" && is.JWKSFile == "":
			d.problemAt(p, "give jwks_url or jwks_file: where the issuer's public keys are")
		case is.JWKSURL != "" && is.JWKSFile != "":
			d.problemAt(p+".jwks_file", "give jwks_url or jwks_file, not both")
		case is.JWKSURL != "":
			u, err := url.Parse(is.JWKSURL)
			if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
				d.problemAt(p+".jwks_url", fmt.Sprintf("want an https:// URL (http:// only on loopback), got %q", is.JWKSURL))
			}
		default:
			d.checkFile(p+".jwks_file", is.JWKSFile)
		}
	}
	return known
}

// validateWriters checks one interface's writers; issuers are the names in
// auth.issuers.
func (d *decoder) validateWriters(p string, in Inbound, httpTLS *TLS, issuers map[string]bool) {
	w, wp := in.Writers, p+".writers"
	for i, a := range w.Addresses {
		if _, err := parseAddress(a); err != nil {
			d.problemAt(fmt.Sprintf("%s.addresses[%d]", wp, i), err.Error())
		}
	}
	for i, c := range w.Certificates {
		if err := checkCertificatePattern(c); err != nil {
			d.problemAt(fmt.Sprintf("%s.certificates[%d]", wp, i), err.Error())
		}
	}
	for _, list := range []struct {
		key  string
		vals []string
	}{{"sending_applications", w.SendingApplications}, {"sending_facilities", w.SendingFacilities}} {
		for i, v := range list.vals {
			if strings.TrimSpace(v) == "" || strings.ContainsAny(v, "|^~\\&\r\n") {
				d.problemAt(fmt.Sprintf("%s.%s[%d]", wp, list.key, i), "want a namespace id (MSH-3.1, MSH-4.1) without HL7 delimiters")
			}
		}
	}
	d.validateTokens(wp+".tokens", w.Tokens)
	if j := w.JWT; j != nil {
		switch {
		case j.Issuer == "":
			d.problemAt(wp+".jwt.issuer", "issuer is required: the name of an entry in auth.issuers")
		case !issuers[j.Issuer]:
			var names []string
			for n := range issuers {
				names = append(names, n)
			}
			d.problemAt(wp+".jwt.issuer", fmt.Sprintf("no auth.issuers entry is called %q%s", j.Issuer, suggest(j.Issuer, names)))
		}
	}

	mllpVerifies := in.Transport == avro.TransportMLLP && in.TLS != nil && in.TLS.ClientCAFile != ""
	httpVerifies := httpTLS != nil && httpTLS.ClientCAFile != ""
	if len(w.Certificates) > 0 && in.Transport == avro.TransportMLLP && !mllpVerifies {
		d.problemAt(wp+".certificates", "client certificates are only verified with tls.client_ca_file on this interface")
	}
	if in.FHIRWritable() && (len(w.SendingApplications) > 0 || len(w.SendingFacilities) > 0) {
		d.problemAt(wp, "sending_applications and sending_facilities are MSH-3 and MSH-4 of HL7 v2 messages; a fhir interface's writers are known by their credentials")
	}
	if !in.HTTPWritable() && !in.FHIRWritable() {
		if len(w.Tokens) > 0 || w.JWT != nil {
			d.problemAt(wp, "tokens and jwt authenticate HTTP writers, but this interface is not written over HTTP; add http: true or remove them")
		}
		return
	}
	// An HTTP writer must prove as much as an MLLP one: a certificate
	// checked on the MLLP listener must not be bypassed over HTTP.
	httpCreds := len(w.Tokens) > 0 || w.JWT != nil || (len(w.Certificates) > 0 && httpVerifies)
	switch {
	case len(w.Certificates) > 0 && !httpVerifies && len(w.Tokens) == 0 && w.JWT == nil:
		d.problemAt(wp+".certificates", "HTTP writers cannot present a client certificate without http.tls.client_ca_file; "+
			"add it, or give writers.tokens or writers.jwt for HTTP")
	case mllpVerifies && !httpCreds:
		d.problemAt(p+".http", "this interface requires client certificates over MLLP, so HTTP writers need a credential too: "+
			"give writers.tokens or writers.jwt, or writers.certificates with http.tls.client_ca_file")
	}
}

func (d *decoder) validateTokens(p string, tokens []Token) {
	seen := map[string]string{}
	for i, t := range tokens {
		tp := fmt.Sprintf("%s[%d]", p, i)
		d.checkName(tp, t.Name, seen)
		if _, written := d.pos[tp+".sha256"]; !written {
			d.problemAt(tp+".sha256", "sha256 is required: the token's SHA-256 in hex (careflow token new makes a token and its hash)")
		}
	}
}

// parseAddress reads an IP or CIDR range.
func parseAddress(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("want an IP address or CIDR range such as 10.20.0.0/16, got %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want an IP address or CIDR range such as 10.20.0.0/16, got %q", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// ParseAddresses reads writers.addresses; Load has already checked them.
func ParseAddresses(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := parseAddress(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

var certPrefixes = []string{"CN=", "DNS:", "URI:", "IP:", "EMAIL:"}

func checkCertificatePattern(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("want CN=name, DNS:name, URI:uri, IP:address, EMAIL:address or a subject such as CN=lab,O=Hospital")
	}
	for _, p := range certPrefixes {
		if strings.HasPrefix(s, p) {
			if len(s) == len(p) {
				return fmt.Errorf("%q names nothing after %s", s, p)
			}
			return nil
		}
	}
	if strings.Contains(s, "=") {
		return nil // a whole subject DN
	}
	return fmt.Errorf("want CN=name, DNS:name, URI:uri, IP:address, EMAIL:address or a subject such as CN=lab,O=Hospital, got %q", s)
}

// decodeDigest reads a SHA-256 written in hex, or a Secret holding one.
func (d *decoder) decodeDigest(path string, n *yaml.Node) (Digest, bool) {
	var dg Digest
	hexText := n.Value
	if n.Kind != yaml.ScalarNode {
		s, ok := d.decodeSecret(path, n)
		if !ok {
			return Digest{}, false
		}
		dg.Secret, hexText = s, s.Value()
	} else {
		dg.Secret = Secret{value: n.Value}
	}
	b, err := hex.DecodeString(strings.TrimSpace(strings.ToLower(hexText)))
	if err != nil || len(b) != 32 {
		// Never echo what was written: it may be the token itself.
		d.problem(n, path, "want a SHA-256 in hex (64 characters); careflow token new makes a token and its hash")
		return Digest{}, false
	}
	copy(dg.sum[:], b)
	return dg, true
}

// isLoopbackHost reports whether host names this machine only.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopback reports whether a listen address (host:port) is reachable
// from this machine only. An empty host listens on every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host != "" && isLoopbackHost(host)
}
