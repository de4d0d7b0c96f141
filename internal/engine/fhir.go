// This file wires a FHIR destination: its HTTP client (with the
// destination's TLS) and, when it authenticates with SMART Backend
// Services, the token source that signs careflow's client assertions.

package engine

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/smart"
	"github.com/careflow-health/careflow/stages/deliver"
)

func (e *Engine) fhirConnector(ctx context.Context, d config.Destination) (deliver.FHIR, error) {
	tc, err := clientTLS(d.TLS)
	if err != nil {
		return deliver.FHIR{}, fmt.Errorf("engine: destination %s: %w", d.Name, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	hc := &http.Client{Transport: tr}
	var ts oauth2.TokenSource
	if s := d.SMART; s != nil {
		key, err := smart.LoadKey(s.KeyFile)
		if err != nil {
			return deliver.FHIR{}, fmt.Errorf("engine: destination %s: smart.key_file: %w", d.Name, err)
		}
		sc := smart.Config{TokenURL: s.TokenURL, ClientID: s.ClientID, Scopes: s.Scopes, Key: key, KeyID: s.KeyID, HTTPClient: hc}
		if err := sc.Validate(); err != nil {
			return deliver.FHIR{}, fmt.Errorf("engine: destination %s: smart: %w", d.Name, err)
		}
		// The token source outlives this call: it belongs to the engine's
		// run, and fetches tokens only when a send asks for one.
		ts = smart.TokenSource(context.WithoutCancel(ctx), sc)
	}
	return deliver.FHIR{BaseURL: d.URL, HTTP: hc, Timeout: d.AckTimeout, Token: ts}, nil
}
