package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startAdmin serves /metrics, /healthz, /readyz, the console under
// /console/ and, in embedded mode, the schema registry at the root
// (registry clients expect it there).
func (e *Engine) startAdmin(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.metrics, promhttp.HandlerOpts{Registry: e.metrics}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-e.ready:
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := e.client.Ping(pctx); err != nil {
			http.Error(w, "kafka unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		var down []string
		for _, r := range e.runners {
			if !r.Ready() {
				down = append(down, r.Name())
			}
		}
		if len(down) > 0 {
			http.Error(w, "stages without a working Kafka session: "+strings.Join(down, ", "), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if err := e.mountConsole(ctx, mux); err != nil {
		return err
	}
	if e.store != nil {
		mux.Handle("/", e.store)
	}
	addr := e.cfg.Admin.Listen
	tc, err := httpTLS(e.cfg.Admin.TLS)
	if err != nil {
		return fmt.Errorf("engine: admin.tls: %w", err)
	}
	ln, err := listen(addr, tc)
	if err != nil {
		return fmt.Errorf("engine: admin listener %s: %w", addr, err)
	}
	e.adminLn = ln
	e.admin = newHTTPServer(mux, e.log, "admin")
	e.serveHTTP(ctx, e.admin, ln)
	return nil
}

// serveHTTP runs srv on ln until ctx ends, then shuts it down gracefully.
func (e *Engine) serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) {
	e.group.Go(func() error {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	e.group.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
}
