package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/careflow-health/careflow/internal/ratelog"

	"github.com/careflow-health/careflow/config"
)

// errEncryptedKey refuses key_password, which config validation reports
// first; this catches a Config built in code.
var errEncryptedKey = errors.New("tls: encrypted private keys are not supported yet; decrypt the key file and protect it with file permissions")

// serverTLS builds a listener's TLS settings; nil config means plain TCP.
// A client CA turns on mutual TLS: only senders with a certificate it signed
// may write.
func serverTLS(c *config.TLS) (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	if c.KeyPassword != nil {
		return nil, errEncryptedKey
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate %s: %w", c.CertFile, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pool, err := loadPool(c.ClientCAFile)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// clientTLS builds a destination's TLS settings; nil config means plain TCP
// for MLLP and the system roots for an https URL.
func clientTLS(c *config.TLS) (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	if c.KeyPassword != nil {
		return nil, errEncryptedKey
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load client certificate %s: %w", c.CertFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: no PEM certificate in %s", file)
	}
	return pool, nil
}

// listen opens a TCP listener, speaking TLS when tc is set.
func listen(addr string, tc *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil || tc == nil {
		return ln, err
	}
	return tls.NewListener(ln, tc), nil
}

func newHTTPServer(h http.Handler, log *slog.Logger, listener string) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		ErrorLog: httpErrorLog(log, listener)}
}

// httpErrorLog is an HTTP server's error log (failed TLS handshakes,
// broken requests) as slog warnings, at most one a minute per remote
// address and kind, the next saying how many were not written.
func httpErrorLog(log *slog.Logger, listener string) *stdlog.Logger {
	return stdlog.New(&rateLimitedWriter{log: log.With("listener", listener)}, "", 0)
}

type rateLimitedWriter struct {
	log     *slog.Logger
	limiter ratelog.Limiter
}

var httpErrorFrom = regexp.MustCompile(`^http: (.*?) from ([^ :\]]+|\[[^\]]+\])(:\d+)?: (.*)$`)

func (w *rateLimitedWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	kind, remote, detail := line, "", ""
	if m := httpErrorFrom.FindStringSubmatch(line); m != nil {
		kind, remote, detail = m[1], m[2], m[4]
	}
	if ok, suppressed := w.limiter.Allow(kind+" "+remote, time.Now()); ok {
		w.log.Warn("http server: "+kind, "remote", remote, "detail", detail, "suppressed", suppressed)
	}
	return len(p), nil
}
