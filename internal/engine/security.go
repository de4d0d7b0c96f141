package engine

// This file turns the configuration's security keys into running checks:
// who may write to each interface (ingest.Writers: tokens, JWT verifiers,
// allow-lists), who may write to the admin port (the schema registry), the
// TLS of the HTTP and admin listeners, and the audit trail of both.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/stages/ingest"
)

// writers compiles one interface's writers. verifiers holds one JWT
// verifier per issuer, shared by the interfaces that name it.
func (e *Engine) writers(ctx context.Context, in config.Inbound, verifiers map[string]*httpx.JWTVerifier) (ingest.Writers, error) {
	w := ingest.Writers{
		Addresses:           config.ParseAddresses(in.Writers.Addresses),
		Certificates:        in.Writers.Certificates,
		SendingApplications: in.Writers.SendingApplications,
		SendingFacilities:   in.Writers.SendingFacilities,
	}
	if len(in.Writers.Tokens) > 0 {
		w.Tokens = staticTokens(in.Writers.Tokens)
	}
	if j := in.Writers.JWT; j != nil {
		v, ok := verifiers[j.Issuer]
		if !ok {
			is, found := e.cfg.IssuerByName(j.Issuer)
			if !found {
				return w, fmt.Errorf("engine: inbound %s: writers.jwt.issuer %q is not in auth.issuers", in.Name, j.Issuer)
			}
			jc := httpx.JWTConfig{Issuer: is.Issuer, Audience: is.Audience, JWKSURL: is.JWKSURL, Logger: e.log}
			if is.JWKSFile != "" {
				b, err := os.ReadFile(is.JWKSFile)
				if err != nil {
					return w, fmt.Errorf("engine: auth.issuers %s: read jwks_file: %w", is.Name, err)
				}
				jc.JWKS = b
			}
			var err error
			if v, err = httpx.NewJWTVerifier(ctx, jc); err != nil {
				return w, fmt.Errorf("engine: auth.issuers %s: %w", is.Name, err)
			}
			verifiers[j.Issuer] = v
		}
		w.JWT, w.Scope = v, j.Scope
	}
	return w, nil
}

func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

func staticTokens(tokens []config.Token) *httpx.StaticTokens {
	st := &httpx.StaticTokens{}
	for _, t := range tokens {
		st.AddToken(t.Name, t.SHA256.Sum())
	}
	return st
}

// httpTLS builds the TLS of an HTTP listener (ingest, admin): a client CA
// asks for client certificates and verifies those given, but does not
// require one, because bearer-token writers have none.
func httpTLS(c *config.TLS) (*tls.Config, error) {
	tc, err := serverTLS(c)
	if err != nil || tc == nil {
		return tc, err
	}
	if tc.ClientCAs != nil {
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// registryOptions guard the embedded registry: anyone may read, only an
// admin token may change it, and no version of careflow's own subjects may
// drop a field the pipeline reads. Every change tried over HTTP is audited.
func (e *Engine) registryOptions() []registry.Option {
	tokens := staticTokens(e.cfg.Admin.Tokens)
	return []registry.Option{
		registry.WithSchemaRule(avro.KeepsFields),
		registry.WithHTTPWrites(registry.HTTPWrites{
			Authorize: func(r *http.Request, subject string) error {
				if tokens.Len() == 0 {
					return &registry.Error{Code: registry.CodeForbidden, Message: "schema registry writes over HTTP are turned off: no admin.tokens are configured"}
				}
				token, err := httpx.BearerToken(r)
				if err != nil {
					return &registry.Error{Code: registry.CodeUnauthorized, Message: "schema registry writes need an admin token (Authorization: Bearer TOKEN)"}
				}
				if _, ok := tokens.Verify(token); !ok {
					return &registry.Error{Code: registry.CodeUnauthorized, Message: "the bearer token is not an admin token"}
				}
				return nil
			},
			Done: func(r *http.Request, subject string, id, version int, err error) {
				who := audit.Refusal{AgentType: audit.AgentAddress, AgentNetwork: hostOf(r.RemoteAddr)}
				if token, terr := httpx.BearerToken(r); terr == nil {
					if name, ok := tokens.Verify(token); ok {
						who.AgentType, who.AgentWho = audit.AgentToken, name
					}
				}
				if err != nil {
					var re *registry.Error
					reason := "refused"
					if errors.As(err, &re) {
						reason = re.Message
					}
					who.Type, who.EntityType, who.EntityWhat, who.Reason = audit.TypeRegistryWriteRefused, audit.EntitySchemaSubject, subject, reason
					e.audit.Refused(who)
					return
				}
				e.audit.Record(avro.AuditEvent{
					Type: audit.TypeRegistryWrite, Action: avro.AuditCreate, Outcome: avro.AuditSuccess,
					AgentType: who.AgentType, AgentWho: who.AgentWho, AgentNetwork: who.AgentNetwork,
					EntityType: audit.EntitySchemaSubject, EntityWhat: subject,
					EntityDetail: fmt.Sprintf("schema id %d, version %d", id, version),
				})
			},
		}),
	}
}

// recordConfiguration audits the configuration this engine runs, by hash,
// and logs what is allowed but unsafe in it.
func (e *Engine) recordConfiguration() {
	e.audit.Record(avro.AuditEvent{
		Type: audit.TypeConfigurationLoaded, Action: avro.AuditExecute, Outcome: avro.AuditSuccess,
		AgentType: audit.AgentCareflow, AgentWho: "careflow", EntityType: audit.EntityConfiguration,
		EntityWhat: e.cfg.Path, EntityDetail: "sha256:" + e.cfg.SHA256,
	})
	for _, w := range e.cfg.Warnings() {
		e.log.Warn("configuration allows something unsafe", "where", w.Error())
	}
}
