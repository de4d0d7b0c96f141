package engine

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// net/http writes one line per failed TLS handshake: a flood of them is a
// warning a minute per address, in slog, with the count of the others.
func TestHTTPErrorLogIsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	l := httpErrorLog(slog.New(slog.NewTextHandler(&buf, nil)), "http")
	for range 50 {
		l.Printf("http: TLS handshake error from 10.1.2.3:4567: EOF")
	}
	l.Printf("http: TLS handshake error from 10.9.9.9:1111: tls: client offered only unsupported versions")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines for 51 errors from two addresses, want 2:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{"level=WARN", "listener=http", "remote=10.1.2.3", "TLS handshake error"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
}
