package httpx

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPostStatuses(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"2xx", http.StatusCreated, `{"id":"1"}`},
		{"4xx", http.StatusBadRequest, "bad PID-3"},
		{"5xx", http.StatusInternalServerError, "db down"},
		{"429", http.StatusTooManyRequests, "slow down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotBody, gotType, gotAuth, gotTrace string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				gotBody, gotType = string(b), r.Header.Get("Content-Type")
				gotAuth, gotTrace = r.Header.Get("Authorization"), r.Header.Get("X-Trace")
				if r.Method != http.MethodPost {
					t.Errorf("method %s", r.Method)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := &Client{Headers: map[string]string{"Authorization": "Bearer t", "X-Trace": "default"}}
			resp, err := c.Post(context.Background(), srv.URL, "application/fhir+json", []byte("payload"), map[string]string{"X-Trace": "call"})
			if err != nil {
				t.Fatalf("Post: %v", err)
			}
			if resp.Status != tt.status || string(resp.Body) != tt.body {
				t.Fatalf("response %d %q, want %d %q", resp.Status, resp.Body, tt.status, tt.body)
			}
			if resp.Latency <= 0 {
				t.Fatal("latency not measured")
			}
			if gotBody != "payload" || gotType != "application/fhir+json" || gotAuth != "Bearer t" || gotTrace != "call" {
				t.Fatalf("server saw body %q type %q auth %q trace %q", gotBody, gotType, gotAuth, gotTrace)
			}
		})
	}
}

func TestPostBodyCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("z", 3*MaxBody))
	}))
	defer srv.Close()
	resp, err := (&Client{}).Post(context.Background(), srv.URL, "text/plain", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Body) != MaxBody {
		t.Fatalf("body %d bytes, want %d", len(resp.Body), MaxBody)
	}
}

func TestPostTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := &Client{Timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := c.Post(context.Background(), srv.URL, "text/plain", []byte("x"), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Post = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %s", d)
	}
}

func TestPostConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	_, err = (&Client{}).Post(context.Background(), url, "text/plain", []byte("x"), nil)
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Fatalf("Post = %v, want a net error", err)
	}
}

func TestPostTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	c := &Client{TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	resp, err := c.Post(context.Background(), srv.URL, "text/plain", []byte("x"), nil)
	if err != nil || resp.Status != http.StatusAccepted {
		t.Fatalf("Post = %+v, %v", resp, err)
	}
	if _, err := (&Client{}).Post(context.Background(), srv.URL, "text/plain", []byte("x"), nil); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
}
