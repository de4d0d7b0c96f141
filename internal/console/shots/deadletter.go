package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/careflow-health/careflow/internal/demo"
)

// invalidA31 is the portal's person update without the patient's
// identifier (PID-3), which the demo's portal-updates interface requires:
// validate dead-letters it. The demo's own traffic is valid, and its
// lab's refusals are answers, not dead letters, so without this the dead
// letter pages would be empty. It names no patient.
var invalidA31 = strings.Join([]string{
	`MSH|^~\&|PORTAL|HOSPITAL|CAREFLOW|HOSPITAL|%[1]s||ADT^A31^ADT_A05|SHOTS-%[1]s|P|2.5.1`,
	`EVN|A31|%[1]s`,
	`PID|1`,
	`PV1|1|N`,
}, "\r") + "\r"

// sendInvalid posts invalidA31 to the demo's portal-updates interface on
// the HTTP ingest at addr, with the portal's published demo token.
func sendInvalid(ctx context.Context, addr string) error {
	msg := fmt.Sprintf(invalidA31, time.Now().UTC().Format("20060102150405"))
	url := "http://" + addr + "/hl7/portal-updates"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(msg)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "x-application/hl7-v2+er7")
	req.Header.Set("Authorization", "Bearer "+demo.PortalToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("send the invalid A31 for the dead letter shots: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// 422 with an AE is the answer to an invalid message, as it should be.
	if resp.StatusCode != http.StatusUnprocessableEntity {
		return fmt.Errorf("send the invalid A31 for the dead letter shots: %s answered %s, want 422 and an AE: %q", url, resp.Status, body)
	}
	return nil
}
