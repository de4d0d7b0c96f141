// Package httpx is careflow's outbound HTTP connector: POST one message,
// report the status, the start of the body and the latency. It does not
// judge the status; the caller decides what 4xx, 5xx or 429 mean for it.
package httpx

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// DefaultTimeout bounds one request when Client.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// MaxBody is how much of a response body Post keeps: enough for an error
// description or an OperationOutcome, without letting a peer fill memory.
const MaxBody = 64 << 10

// Client posts messages to HTTP endpoints. Zero values mean the documented
// defaults; a Client is safe for concurrent use once configured.
type Client struct {
	// Timeout bounds one request, headers and body. Default: 10s.
	Timeout time.Duration
	// TLSConfig is used when HTTP is nil.
	TLSConfig *tls.Config
	// Headers are sent with every request (e.g. Authorization, read from
	// the environment or a file by the caller). Per-call headers override.
	Headers map[string]string
	// HTTP, when set, is used as is (its Transport and any Timeout);
	// otherwise a client with its own transport is built on first use.
	HTTP *http.Client

	once          sync.Once
	defaultClient *http.Client
}

// Response is the outcome of one POST.
type Response struct {
	Status  int
	Body    []byte // the first MaxBody bytes
	Latency time.Duration
}

// Post sends body to url. Any HTTP status is a Response; the error is for
// transport failures only: a timeout matches context.DeadlineExceeded,
// other failures are net errors wrapped in *url.Error.
func (c *Client) Post(ctx context.Context, url, contentType string, body []byte, headers map[string]string) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Response{}, fmt.Errorf("build POST request: %w", err)
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	start := time.Now()
	resp, err := c.client().Do(req)
	if err != nil {
		return Response{}, err // *url.Error; wraps context.DeadlineExceeded on timeout
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	latency := time.Since(start)
	if err != nil {
		return Response{}, fmt.Errorf("read response body from %s (status %d): %w", req.URL.Redacted(), resp.StatusCode, err)
	}
	// Drain a little more so the connection can be reused; a huge body is
	// cut off by Close instead.
	_, _ = io.CopyN(io.Discard, resp.Body, MaxBody)
	return Response{Status: resp.StatusCode, Body: data, Latency: latency}, nil
}

// CloseIdleConnections closes the keep-alive connections not in use.
func (c *Client) CloseIdleConnections() { c.client().CloseIdleConnections() }

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.once.Do(func() {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = c.TLSConfig
		c.defaultClient = &http.Client{Transport: t}
	})
	return c.defaultClient
}

func (c *Client) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultTimeout
	}
	return c.Timeout
}
