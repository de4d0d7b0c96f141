package console

import (
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/careflow-health/careflow/analytics"
)

// Charts are drawn on the server as SVG: no script, nothing to fetch, and
// a screenshot or a print shows what the screen did.

var palette = []string{"#0b5cad", "#1a7f37", "#cf222e", "#9a6700", "#8250df", "#1b7c83", "#bc4c00", "#57606a"}

// lineChart draws series over [since, until) with a y axis in unit.
func lineChart(title, unit string, series []analytics.Series, since, until time.Time) template.HTML {
	const w, h, left, right, top, bottom = 640, 240, 56, 150, 24, 28
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	span := until.Sub(since).Seconds()
	maxV := 0.0
	for _, s := range series {
		for _, p := range s.Points {
			maxV = math.Max(maxV, p.Value)
		}
	}
	maxV = niceCeil(maxV)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img" aria-label="%s" font-family="system-ui,sans-serif" font-size="11">`, w, h, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="14" font-size="13" font-weight="600" fill="#1d2733">%s</text>`, left, esc(title))
	for i := 0; i <= 4; i++ {
		y := float64(top) + ph - ph*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e6eaef"/><text x="%d" y="%.1f" text-anchor="end" fill="#5b6b7c">%s</text>`,
			left, w-right, y, y, left-6, y+4, esc(short(maxV*float64(i)/4)+unit))
	}
	for i := 0; i <= 4; i++ {
		t := since.Add(time.Duration(float64(until.Sub(since)) * float64(i) / 4))
		x := float64(left) + pw*float64(i)/4
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#5b6b7c">%s</text>`, x, h-8, t.UTC().Format("15:04"))
	}
	if len(series) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#5b6b7c">nothing in this window</text>`, left+20, top+int(ph/2))
	}
	for i, s := range series {
		col := palette[i%len(palette)]
		var pts []string
		for _, p := range s.Points {
			x := float64(left) + pw*p.At.Sub(since).Seconds()/math.Max(span, 1)
			y := float64(top) + ph - ph*p.Value/math.Max(maxV, 1e-9)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		if len(pts) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" r="3" fill="%s"/>`, strings.Replace(pts[0], ",", `" cy="`, 1), col)
		} else if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, col, strings.Join(pts, " "))
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" fill="#1d2733">%s</text>`,
			w-right+12, top+i*16, col, w-right+27, top+i*16+9, esc(s.Label))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text is escaped above
}

// barChart draws one horizontal bar per code.
func barChart(title string, codes []analytics.CodeCount) template.HTML {
	const w, left, barH = 640, 230, 18
	h := 30 + max(len(codes), 1)*(barH+6)
	maxV := uint64(1)
	for _, c := range codes {
		maxV = max(maxV, c.Count)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" style="max-width:%dpx" role="img" aria-label="%s" font-family="system-ui,sans-serif" font-size="11">`, w, h, w, esc(title))
	fmt.Fprintf(&b, `<text x="4" y="14" font-size="13" font-weight="600" fill="#1d2733">%s</text>`, esc(title))
	if len(codes) == 0 {
		fmt.Fprintf(&b, `<text x="4" y="40" fill="#5b6b7c">no rejections in this window</text>`)
	}
	for i, c := range codes {
		y := 26 + i*(barH+6)
		bw := float64(w-left-60) * float64(c.Count) / float64(maxV)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#1d2733">%s · %s</text><rect x="%d" y="%d" width="%.1f" height="%d" fill="#cf222e" opacity=".75"/><text x="%.1f" y="%d" fill="#1d2733">%d</text>`,
			left-6, y+13, esc(c.Stage), esc(c.Code), left, y, math.Max(bw, 1), barH, float64(left)+bw+4, y+13, c.Count)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// windows are the chart spans offered, with the step each is drawn at.
var windows = []struct {
	Name string
	Span time.Duration
	Step time.Duration
}{{"1h", time.Hour, time.Minute}, {"6h", 6 * time.Hour, 5 * time.Minute}, {"24h", 24 * time.Hour, 15 * time.Minute}, {"7d", 7 * 24 * time.Hour, 2 * time.Hour}}

func (c *Console) chartsPage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	win := windows[0]
	for _, x := range windows {
		if x.Name == r.URL.Query().Get("window") {
			win = x
		}
	}
	v := map[string]any{"Window": win.Name, "Windows": windows}
	if c.analytics() == nil {
		v["Error"] = errNoAnalytics.Error()
		c.render(w, r, s, "charts", v)
		return
	}
	until := c.cfg.Now().Truncate(win.Step).Add(win.Step)
	since := until.Add(-win.Span)
	ctx := r.Context()
	var problems []string
	delivered, err := c.analytics().DeliveredPer(ctx, since, until, win.Step)
	if err != nil {
		problems = append(problems, "throughput: "+err.Error())
	}
	latency, err := c.analytics().LatencyPer(ctx, since, until, win.Step)
	if err != nil {
		problems = append(problems, "latency: "+err.Error())
	}
	codes, err := c.analytics().RejectionsByCode(ctx, since)
	if err != nil {
		problems = append(problems, "rejections: "+err.Error())
	}
	v["Throughput"] = lineChart("Delivered per "+short(win.Step.Minutes())+" min, by destination", "", delivered, since, until)
	v["Latency"] = lineChart("p95 ingest → ACK, by destination", " ms", latency, since, until)
	v["Rejections"] = barChart("Rejections and dead letters by code, last "+win.Name, codes)
	v["Problems"] = problems
	c.render(w, r, s, "charts", v)
}
