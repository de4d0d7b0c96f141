package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/careflow-health/careflow/stages/replay"
)

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"login", "error", "estate", "messages", "message", "deadletters", "deadletter",
	"exceptions", "reviews", "charts", "users", "audit"}

type pages struct{ t map[string]*template.Template }

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	},
	"age": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return ago(time.Since(t))
	},
	"dur": func(d time.Duration) string {
		if d <= 0 {
			return "—"
		}
		return d.Round(time.Millisecond).String()
	},
	"dash": func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	},
	"json": func(v any) (string, error) {
		b, err := json.MarshalIndent(v, "", "  ")
		return string(b), err
	},
	"join": strings.Join,
	"lastBy": func(ms []replay.Mark) string {
		if len(ms) == 0 {
			return ""
		}
		return ms[len(ms)-1].By
	},
	"pct": func(n, of uint64) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(max(of, 1))) },
	"rate": func(v float64) string {
		if v < 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f/min", v)
	},
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func parsePages() (*pages, error) {
	p := &pages{t: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		p.t[name] = t
	}
	return p, nil
}

// view is what every page template gets: the page's own data, and who is
// looking.
type view struct {
	Page    string
	Session *session
	Data    any
	Now     time.Time
	Flash   string // what the last action did, shown once
}

// Can reports whether the viewer's role reaches role.
func (v view) Can(role string) bool { return v.Session != nil && rank(v.Session.Role) >= rank(role) }

// render writes page with data, inside the layout.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, page string, data any) {
	c.renderBlock(w, s, page, "layout.html", http.StatusOK, data, c.popFlash(r))
}

func (c *Console) renderBlock(w http.ResponseWriter, s *session, page, block string, status int, data any, flash ...string) {
	t := c.pages.t[page]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, view{Page: page, Session: s, Data: data, Now: c.cfg.Now(), Flash: strings.Join(flash, "")}); err != nil {
		c.log.Error("console page", "page", page, "block", block, "err", err)
		http.Error(w, "console: page "+page+" failed; the log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // pages may hold patient data
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

// fail shows err on the error page with status.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, err error) {
	block := "layout.html"
	if r.Header.Get("HX-Request") != "" {
		block = "problem"
	}
	c.renderBlock(w, s, "error", block, status, map[string]any{"Status": status, "Error": err.Error()})
}

func staticFiles() http.Handler {
	fsrv := http.FileServer(http.FS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}
