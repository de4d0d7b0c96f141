// This file is the patient portal as a source: patients change their own
// phone number there, and now and then their address too, which the
// portal does not own (the EHR does). It posts ADT^A31 to careflow's
// portal-updates interface over HTTP, knowing each patient by a portal
// number (^^^PORTAL^PI) and the NHS number. careflow's ownership matrix
// (examples/demo/careflow.yaml) passes the phone number on and strips the
// address, with a field_not_owned outcome.

package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

const (
	portalApp = "PORTAL"
	// portalAuthority is the assigning authority of the portal numbers.
	portalAuthority = "PORTAL"
	// PortalToken is the bearer token the demo's portal presents to
	// portal-updates. Published, so for the demo only; the demo
	// configuration holds its SHA-256.
	PortalToken = "careflow-demo-portal-token"
	// portalEvery is how many EHR messages go by, on average, between
	// two portal updates.
	portalEvery = 8
	// portalAddressShare is the share of portal updates that also change
	// the address, on purpose.
	portalAddressShare = 0.3
)

// maybePortalUpdate returns, about once every portalEvery calls, an A31
// from the portal for a registered patient who has an NHS number: a new
// phone number and, sometimes, a new address. nil otherwise. It belongs to
// the generator, so it runs on the EHR's goroutine.
func (g *ehrGenerator) maybePortalUpdate(now time.Time) []byte {
	if g.rng.IntN(portalEvery) != 0 {
		return nil
	}
	p := g.patients[g.rng.IntN(len(g.patients))]
	if !p.registered {
		return nil
	}
	phone := fmt.Sprintf("07700 9%05d", g.rng.IntN(100000)) // Ofcom's drama range
	street := ""
	if g.rng.Float64() < portalAddressShare {
		street = fmt.Sprintf("%d %s", 1+g.rng.IntN(200), streets[g.rng.IntN(len(streets))])
	}
	// The portal's idea of the patient; the EHR's record keeps its own
	// address whatever the portal says (careflow strips it).
	p.phone = phone
	return portalA31(p, phone, street, g.nextID("PU"), now)
}

// portalA31 writes the portal's person update. street "" leaves the
// address out.
func portalA31(p *patient, phone, street, controlID string, now time.Time) []byte {
	b := hl7v2.NewBuilder(hl7v2.DefaultDelimiters)
	msh(b, portalApp, engineApp, "ADT", "A31", structures["A31"], controlID, ehrVersion, now)
	b.Segment("EVN").Set("1", "A31").Set("2", hl7v2.FormatTime(now))
	s := b.Segment("PID").Set("1", "1").
		Set("3.1", p.portal).Set("3.4", portalAuthority).Set("3.5", "PI").
		Set("3[2].1", p.nhs).Set("3[2].4", "NHS").Set("3[2].5", "NH").
		Set("5.1", p.family).Set("5.2", p.given).
		Set("13.1", phone).Set("13.2", "PRN").Set("13.3", "CP")
	if street != "" {
		s.Set("11.1", street).Set("11.3", p.city).Set("11.5", p.postcode).Set("11.7", "H")
	}
	b.Segment("PV1").Set("1", "1").Set("2", "N")
	return b.Bytes()
}

// runPortalUpdates posts each update from updates to url with the
// portal's token until ctx ends. One that fails is counted and dropped:
// the patient will change their number again.
func runPortalUpdates(ctx context.Context, url string, st *stats, updates <-chan []byte) error {
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		var msg []byte
		select {
		case <-ctx.Done():
			return nil
		case msg = <-updates:
		}
		st.portalUpdatesSent.Add(1)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(msg))
		if err != nil {
			return fmt.Errorf("demo: portal-updates request: %w", err)
		}
		req.Header.Set("Content-Type", "x-application/hl7-v2+er7")
		req.Header.Set("Authorization", "Bearer "+PortalToken)
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			st.portalUpdatesFailed.Add(1)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		countACK(body, &st.portalUpdatesACKed, &st.portalUpdatesNAKed)
	}
}
