package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/demo"
)

// demoIssuer names the demo identity provider among auth.issuers in
// examples/demo/careflow.yaml; its jwks_url says where it listens.
const demoIssuer = "demo"

// cmdDemoToken asks the running demo's identity provider for a token and
// prints it alone, for curl -H "Authorization: Bearer $(careflow demo token ...)".
func cmdDemoToken(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo token", flag.ContinueOnError)
	scope := fs.String("scope", "", `scopes the token grants, space separated (e.g. "careflow/apps.write system/Observation.write")`)
	sub := fs.String("sub", "", "the token's subject (default "+demo.DefaultSubject+")")
	idp := fs.String("idp", demo.DefaultIdP, "the demo identity provider's `host:port`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *scope == "" || fs.NArg() > 0 {
		return usageError{`demo token --scope "careflow/apps.write system/Observation.write" [--sub NAME] [--idp host:port]`}
	}
	tok, err := demo.FetchToken(ctx, *idp, *scope, *sub)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// demoIdPAddr is where the demo identity provider listens for cfg: the
// host:port of the demo issuer's jwks_url, else demo.DefaultIdP.
func demoIdPAddr(cfg *config.Config) string {
	if is, ok := cfg.IssuerByName(demoIssuer); ok && is.JWKSURL != "" {
		return hostPortOf(is.JWKSURL)
	}
	return demo.DefaultIdP
}
