// This file holds FHIR R4's keys: the identifier systems every FHIR
// interface and destination shares, the resource types an interface
// takes, and a destination's SMART Backend Services client.

package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
)

// FHIR holds what FHIR interfaces and destinations share.
type FHIR struct {
	// IdentifierSystems maps v2 assigning authorities (CX.4, EI.2) to FHIR
	// identifier system URIs, both ways: HOSP's MRNs are written, and
	// read, as https://trust.example.org/Id/mrn. NHS and CHI are built
	// in; an authority left out is written as urn:careflow:authority:NAME.
	IdentifierSystems map[string]string `yaml:"identifier_systems"`
}

// SMART is a FHIR destination's SMART Backend Services client
// (client-credentials with a signed JWT assertion).
type SMART struct {
	// TokenURL is the authorisation server's token endpoint.
	TokenURL string `yaml:"token_url"`
	// ClientID is careflow's client id there.
	ClientID string `yaml:"client_id"`
	// KeyFile is the PEM (PKCS#8) RSA or EC private key careflow signs
	// its assertions with; KeyID is its "kid" in the JWK Set the server
	// was given.
	KeyFile string `yaml:"key_file"`
	KeyID   string `yaml:"key_id"`
	// Scopes are requested with each token (system/Patient.write ...).
	Scopes []string `yaml:"scopes"`
}

// FHIRBase is the path interface name's FHIR base URL is served under on
// the HTTP listener.
func FHIRBase(name string) string { return "/fhir/" + name }

func (d *decoder) validateFHIRInbound(p string, in Inbound) {
	if in.Listen != "" {
		d.problemAt(p+".listen", "a fhir interface is served on http.listen at "+FHIRBase(in.Name)+"/; remove listen")
	}
	if in.TLS != nil {
		d.problemAt(p+".tls", "applies to mllp interfaces only; HTTPS is http.tls")
	}
	for i, r := range in.Resources {
		if !slices.Contains(fhir.ResourceTypes, r) {
			d.problemAt(fmt.Sprintf("%s.resources[%d]", p, i), fmt.Sprintf("careflow does not take FHIR %q%s; it takes %s",
				r, suggest(r, fhir.ResourceTypes), strings.Join(fhir.ResourceTypes, ", ")))
		}
	}
	if d.written(p + ".accept") {
		d.problemAt(p+".accept", "HL7 v2 accept rules do not apply to a fhir interface: each resource is validated against the FHIR R4 specification")
	}
}

func (d *decoder) validateFHIRDestination(p string, dst Destination) {
	d.checkURL(p+".url", dst.URL)
	d.notFor(p+".address", dst.Address, "fhir destinations; use url (the server's FHIR base)")
	if d.written(p+".format") && dst.Format != avro.FormatFHIR {
		d.problemAt(p+".format", fmt.Sprintf("a fhir destination receives FHIR R4 transaction Bundles; remove format or write fhir, not %q", dst.Format))
	}
	if dst.TLS != nil && strings.HasPrefix(dst.URL, "http://") {
		d.problemAt(p+".tls", "needs an https url")
	}
	if s := dst.SMART; s != nil {
		if u, err := url.Parse(s.TokenURL); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
			d.problemAt(p+".smart.token_url", fmt.Sprintf("want an https:// URL (http:// only on loopback), got %q", s.TokenURL))
		}
		if s.ClientID == "" {
			d.problemAt(p+".smart.client_id", "client_id is required: careflow's client id at the authorisation server")
		}
		if s.KeyFile == "" {
			d.problemAt(p+".smart.key_file", "key_file is required: the private key careflow signs its client assertions with")
		} else {
			d.checkFile(p+".smart.key_file", s.KeyFile)
		}
	}
}
