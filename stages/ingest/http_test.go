package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/topics"
)

func TestHTTPHandler(t *testing.T) {
	h := newHarness(t)
	srv := httptest.NewServer(h.stage.HTTPHandler())
	defer srv.Close()
	tooBig := append(fixture(t, "adt_a01.hl7"), strings.Repeat("Z", smallLimit)...)
	tests := []struct {
		name, method, path string
		body               []byte
		status             int
		code               hl7v2.AckCode // "" when the reply is not an ACK
	}{
		{"accepted on an MLLP interface", http.MethodPost, "/hl7/ehr", fixture(t, "adt_a01.hl7"), 200, hl7v2.AckAA},
		{"accepted on an HTTP-only interface", http.MethodPost, "/hl7/web", fixture(t, "adt_a01_enhanced.hl7"), 200, hl7v2.AckCA},
		{"unparseable", http.MethodPost, "/hl7/web", fixture(t, "no_msh.hl7"), 400, hl7v2.AckAR},
		{"over size", http.MethodPost, "/hl7/small", tooBig, 413, hl7v2.AckAR},
		{"unknown interface", http.MethodPost, "/hl7/nope", fixture(t, "adt_a01.hl7"), 404, ""},
		{"not POST", http.MethodGet, "/hl7/ehr", nil, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(context.Background(), tt.method, srv.URL+tt.path, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ContentTypeER7)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.code == "" {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != ContentTypeER7 {
				t.Errorf("Content-Type %q", ct)
			}
			ack, err := hl7v2.ParseACK(body)
			if err != nil || ack.Code != tt.code {
				t.Fatalf("ACK %+v (%v), want %s", ack, err, tt.code)
			}
		})
	}
	recs := h.consume(t, topics.Raw, 2)
	var raw avro.RawMessage
	if err := h.serde.Decode(recs[0].Value, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Transport != avro.TransportHTTP {
		t.Errorf("transport %q, want http", raw.Transport)
	}
	dl := h.consume(t, topics.DeadLetter(topics.StageIngest), 2)
	codes := map[string]bool{}
	for _, r := range dl {
		codes[header(r, topics.HeaderDLQCode)] = true
	}
	if !codes[hl7v2.CodeNoMSH] || !codes[CodeTooLarge] {
		t.Errorf("dead letter codes %v", codes)
	}
}
