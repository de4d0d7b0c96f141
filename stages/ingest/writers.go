package ingest

// This file decides who a writer is and whether they may write to an
// interface: the source address, the verified client certificate, the
// bearer token or JWT of an HTTP request, and the sending application and
// facility a message names. A refused writer gets AR (MLLP) or 401/403
// (HTTP), nothing is stored, and the refusal is audited.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/stages/audit"
)

// Writers says who may write to one interface. Every kind that is set
// must hold; within a kind any entry will do. Tokens, JWT and Certificates
// are HTTP credentials: when any is set, an HTTP writer must present one.
type Writers struct {
	Addresses           []netip.Prefix // source IPs; none: any
	Certificates        []string       // CN=, DNS:, URI:, IP:, EMAIL: or a whole subject; none: any
	SendingApplications []string       // MSH-3.1; none: any
	SendingFacilities   []string       // MSH-4.1; none: any
	Tokens              *httpx.StaticTokens
	JWT                 *httpx.JWTVerifier
	// CertificateCAs, when set, must have signed a certificate an HTTP
	// writer presents: the interface's own client CAs, so that the HTTP
	// listener's (which may trust more) cannot widen who writes here.
	CertificateCAs *x509.CertPool
	// Scope a JWT must grant; required with JWT (configuration's default:
	// careflow/{interface}.write).
	Scope string
}

// hasCredentials reports whether HTTP writers must authenticate.
func (w *Writers) hasCredentials() bool {
	return (w.Tokens != nil && w.Tokens.Len() > 0) || w.JWT != nil || len(w.Certificates) > 0
}

// Writer is who sent a message, as far as careflow could tell.
type Writer struct {
	Kind    string // audit.AgentToken, AgentJWT, AgentCertificate or AgentAddress
	Who     string // token name, JWT subject, certificate subject; "" for an address
	Address string // the remote IP
	// Scopes are a JWT writer's granted scopes, which a FHIR interface
	// checks per resource type; nil for other writers.
	Scopes []string
}

// String is the writer as RawMessage.Writer records it.
func (w Writer) String() string {
	if w.Kind == audit.AgentAddress || w.Who == "" {
		return audit.AgentAddress + ":" + w.Address
	}
	return w.Kind + ":" + w.Who
}

// refusal is why a writer was refused: careflow's words, for the sender,
// the log and the audit trail alike. They never hold message content.
type refusal struct {
	reason string
	// status is the HTTP answer: 401 (no or bad credential) or 403.
	status int
}

func (r *refusal) Error() string { return r.reason }

// peerOf returns the writer a connection or request identifies before any
// credential: its address, or the subject of its verified certificate.
func peerOf(remote string, state *tls.ConnectionState) Writer {
	w := Writer{Kind: audit.AgentAddress, Address: hostOf(remote)}
	if cert := verifiedCert(state); cert != nil {
		w.Kind, w.Who = audit.AgentCertificate, cert.Subject.String()
	}
	return w
}

func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// verifiedCert returns the leaf certificate of a chain the listener
// verified, or nil.
func verifiedCert(state *tls.ConnectionState) *x509.Certificate {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return nil
	}
	return state.VerifiedChains[0][0]
}

// checkAddress applies the address rule, which holds for every transport.
func (w *Writers) checkAddress(iface string, addr string) *refusal {
	if len(w.Addresses) == 0 {
		return nil
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !slices.ContainsFunc(w.Addresses, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
		return &refusal{reason: "address " + addr + " may not write to interface " + iface, status: http.StatusForbidden}
	}
	return nil
}

// checkCertificate applies the certificate rule to a connection whose
// listener verified client certificates (MLLP); HTTP requests present
// theirs as a credential (authenticate).
func (w *Writers) checkCertificate(iface string, state *tls.ConnectionState) *refusal {
	if len(w.Certificates) == 0 {
		return nil
	}
	if cert := verifiedCert(state); cert == nil || !matchesAny(cert, w.Certificates) {
		return &refusal{reason: "client certificate may not write to interface " + iface, status: http.StatusForbidden}
	}
	return nil
}

// authenticate establishes who an HTTP request comes from when the
// interface asks for a credential: a static bearer token, then a JWT
// granting the interface's scope, then a client certificate the listener
// verified. A missing or unknown credential is 401; a valid one that does
// not grant this interface is 403.
func (w *Writers) authenticate(r *http.Request, iface string, peer Writer) (Writer, *refusal) {
	if !w.hasCredentials() {
		return peer, nil
	}
	token, err := httpx.BearerToken(r)
	switch {
	case err == nil:
		if w.Tokens != nil {
			if name, ok := w.Tokens.Verify(token); ok {
				return Writer{Kind: audit.AgentToken, Who: name, Address: peer.Address}, nil
			}
		}
		if w.JWT == nil {
			return peer, &refusal{reason: "bearer token is not one interface " + iface + " accepts", status: http.StatusUnauthorized}
		}
		claims, err := w.JWT.Verify(r.Context(), token)
		if err != nil {
			return peer, &refusal{reason: err.Error(), status: http.StatusUnauthorized}
		}
		who := Writer{Kind: audit.AgentJWT, Who: claims.Subject, Address: peer.Address, Scopes: claims.Scopes}
		if !claims.HasScope(w.Scope) {
			return who, &refusal{reason: "bearer JWT does not grant scope " + w.Scope, status: http.StatusForbidden}
		}
		return who, nil
	case !errors.Is(err, httpx.ErrNoCredential):
		return peer, &refusal{reason: err.Error(), status: http.StatusUnauthorized}
	}
	if peer.Kind == audit.AgentCertificate && len(w.Certificates) > 0 {
		if ref := w.checkCertificate(iface, r.TLS); ref != nil {
			return peer, ref
		}
		if w.CertificateCAs != nil && !signedBy(r.TLS, w.CertificateCAs) {
			return peer, &refusal{reason: "client certificate is not from a CA interface " + iface + " trusts", status: http.StatusForbidden}
		}
		return peer, nil
	}
	return peer, &refusal{reason: "interface " + iface + " needs a bearer token or a client certificate", status: http.StatusUnauthorized}
}

// checkSender applies the MSH-3 and MSH-4 rules to a parsed header.
func (w *Writers) checkSender(iface string, h hl7v2.Header, d hl7v2.Delimiters) *refusal {
	first := func(hd string) string {
		v, _, _ := strings.Cut(hd, string(d.Component))
		return v
	}
	if len(w.SendingApplications) > 0 && !slices.Contains(w.SendingApplications, first(h.SendingApplication)) {
		return &refusal{reason: "sending application (MSH-3) may not write to interface " + iface, status: 403}
	}
	if len(w.SendingFacilities) > 0 && !slices.Contains(w.SendingFacilities, first(h.SendingFacility)) {
		return &refusal{reason: "sending facility (MSH-4) may not write to interface " + iface, status: 403}
	}
	return nil
}

// signedBy reports whether the peer's certificate chains to one of pool.
func signedBy(state *tls.ConnectionState, pool *x509.CertPool) bool {
	if state == nil || len(state.PeerCertificates) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := state.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err == nil
}

// matchesAny reports whether cert matches one of the patterns: CN=name
// (the subject's common name), DNS:, URI:, IP:, EMAIL: (a subject
// alternative name), or a whole subject DN as Go prints it.
func matchesAny(cert *x509.Certificate, patterns []string) bool {
	for _, p := range patterns {
		kind, val, _ := strings.Cut(p, ":")
		switch {
		case strings.HasPrefix(p, "CN=") && !strings.Contains(p, ","):
			if cert.Subject.CommonName == p[3:] {
				return true
			}
		case kind == "DNS":
			if slices.Contains(cert.DNSNames, val) {
				return true
			}
		case kind == "EMAIL":
			if slices.Contains(cert.EmailAddresses, val) {
				return true
			}
		case kind == "URI":
			for _, u := range cert.URIs {
				if u.String() == val {
					return true
				}
			}
		case kind == "IP":
			for _, ip := range cert.IPAddresses {
				if ip.String() == val {
					return true
				}
			}
		default:
			if cert.Subject.String() == p {
				return true
			}
		}
	}
	return false
}
