package console

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/topics"
)

// interfaceRow is one inbound interface on the estate page.
type interfaceRow struct {
	Name, Transport, Listen string
	State                   string // receiving (connections open or HTTP/FHIR), idle (MLLP with none open)
	Connections             int
	Rate                    float64 // accepted per minute; -1 unknown yet
	Accepted, Rejected      float64 // since this engine started
	Exceptions, DeadLetters uint64  // last 24h, from ClickHouse
	Reviews                 uint64  // held for a person, undecided
	LastAt                  time.Time
}

// destinationRow is one destination on the estate page.
type destinationRow struct {
	Name, Transport, Target string
	Breaker                 string // closed, half-open, open; "" when this process runs no deliver for it
	Paused                  bool
	Rate                    float64 // delivered per minute; -1 unknown yet
	Backlog                 float64 // consumer lag of its outbound topic; -1 unknown
	Pending                 uint64  // routed with no final result (ClickHouse)
	OldestPending           time.Time
	Breaches                uint64
	LastError, LastErrorAt  string
	Delivered, Rejected     uint64 // last 24h
}

type estate struct {
	Interfaces   []interfaceRow
	Destinations []destinationRow
	Routes       []config.Route
	Flow         template.HTML
	Analytics    bool
	Problem      string // ClickHouse unreachable: the figures it gives are missing
	At           time.Time
}

var breakerStates = map[float64]string{0: "closed", 1: "half-open", 2: "open"}

func (c *Console) estate(ctx context.Context) estate {
	s := c.snapshot()
	now := c.cfg.Now()
	e := estate{Routes: c.cfg.Estate.Routes, Analytics: c.cfg.Estate.Analytics.Enabled(), At: now}
	var dstats map[string]analytics.DestinationStats
	var istats map[string]analytics.InterfaceStats
	if store := c.analytics(); store == nil && e.Analytics {
		e.Problem = "ClickHouse is configured but not reachable yet: backlog age, SLA breaches, exceptions and last errors are missing"
	} else if store != nil {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		since := now.Add(-24 * time.Hour)
		var err error
		if dstats, err = store.Destinations(qctx, since); err == nil {
			istats, err = store.Interfaces(qctx, since)
		}
		if err != nil {
			e.Problem = "ClickHouse did not answer, so backlog age, SLA breaches, exceptions and last errors are missing: " + err.Error()
		}
	}
	for _, in := range c.cfg.Estate.Inbound {
		row := interfaceRow{Name: in.Name, Transport: in.Transport, Listen: in.Listen, Rate: c.rates.perMinute("in/" + in.Name)}
		conns, _ := s.sum("careflow_ingest_connections", "interface", in.Name)
		row.Connections = int(conns)
		row.Accepted, _ = s.sum("careflow_ingest_messages_total", "interface", in.Name, "result", "accepted")
		row.Rejected, _ = s.sum("careflow_ingest_messages_total", "interface", in.Name, "result", "rejected")
		row.State = "receiving"
		if in.Transport == "mllp" && row.Connections == 0 {
			row.State = "idle"
		}
		if st, ok := istats[in.Name]; ok {
			row.Exceptions, row.DeadLetters, row.Reviews, row.LastAt = st.Exceptions, st.DeadLetters, st.OpenExceptions, st.LastAt
		}
		e.Interfaces = append(e.Interfaces, row)
	}
	for _, d := range c.cfg.Estate.Destinations {
		row := destinationRow{Name: d.Name, Transport: d.Transport, Target: d.Address + d.URL,
			Rate: c.rates.perMinute("out/" + d.Name), Backlog: -1}
		if v, ok := s.sum("careflow_deliver_breaker_state", "destination", d.Name); ok {
			row.Breaker = breakerStates[v]
		}
		if v, ok := s.sum("careflow_stage_paused", "stage", topics.StageDeliver, "group", "careflow-deliver-"+d.Name); ok {
			row.Paused = v > 0
		}
		if v, ok := s.sum("careflow_consumer_lag", "topic", topics.Outbound(d.Name), "group", "careflow-deliver-"+d.Name); ok {
			row.Backlog = v
		}
		if st, ok := dstats[d.Name]; ok {
			row.Pending, row.OldestPending, row.Breaches = st.Pending, st.OldestPending, st.Breaches
			row.Delivered, row.Rejected = st.Delivered, st.Rejected
			if st.LastErrorCode != "" {
				row.LastError = st.LastErrorCode
				if st.LastError != "" && st.LastError != st.LastErrorCode {
					row.LastError += ": " + st.LastError
				}
				row.LastErrorAt = ago(now.Sub(st.LastErrorAt)) + " ago"
			}
		}
		e.Destinations = append(e.Destinations, row)
	}
	e.Flow = flowSVG(c.cfg.Estate, e.Destinations)
	return e
}

func (c *Console) estatePage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, sessionOf(r), "estate", c.estate(r.Context()))
}

// estateLive is the part of the estate page htmx refreshes.
func (c *Console) estateLive(w http.ResponseWriter, r *http.Request) {
	c.renderBlock(w, sessionOf(r), "estate", "live", http.StatusOK, c.estate(r.Context()))
}

// feeds reports whether route r takes events from interface name: when
// its expression names the interface (as a string literal), or names no
// interface at all, in which case it may take any.
func feeds(r config.Route, names []string, name string) bool {
	any := true
	for _, n := range names {
		if strings.Contains(r.When, `"`+n+`"`) || strings.Contains(r.When, `'`+n+`'`) {
			if n == name {
				return true
			}
			any = false
		}
	}
	return any
}

// flowSVG draws interfaces → routes → destinations, each destination
// coloured by its breaker.
func flowSVG(cfg *config.Config, dests []destinationRow) template.HTML {
	const colW, boxW, boxH, gap = 300, 190, 26, 10
	var names []string
	for _, in := range cfg.Inbound {
		names = append(names, in.Name)
	}
	rows := max(len(cfg.Inbound), len(cfg.Routes), len(cfg.Destinations), 1)
	h := rows*(boxH+gap) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="flows: interfaces, routes, destinations" viewBox="0 0 %d %d" width="100%%" style="max-width:%dpx">`, 2*colW+boxW+20, h, 2*colW+boxW+20)
	fmt.Fprintf(&b, `<g font-size="11" font-family="system-ui,sans-serif" fill="#5b6b7c"><text x="10" y="14">interfaces</text><text x="%d" y="14">routes</text><text x="%d" y="14">destinations</text></g>`, colW+10, 2*colW+10)
	y := func(i int) int { return 24 + i*(boxH+gap) }
	destIdx := map[string]int{}
	for i, d := range cfg.Destinations {
		destIdx[d.Name] = i
	}
	// Edges first, under the boxes.
	for ri, r := range cfg.Routes {
		for ii, in := range cfg.Inbound {
			if feeds(r, names, in.Name) {
				fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#b6c2cf"/>`, 10+boxW, y(ii)+boxH/2, colW+10, y(ri)+boxH/2)
			}
		}
		if di, ok := destIdx[r.Destination]; ok {
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#8aa0b6"/>`, colW+10+boxW, y(ri)+boxH/2, 2*colW+10, y(di)+boxH/2)
		}
	}
	box := func(x, yy int, label, fill, stroke, title string) {
		fmt.Fprintf(&b, `<g><title>%s</title><rect x="%d" y="%d" width="%d" height="%d" rx="4" fill="%s" stroke="%s"/><text x="%d" y="%d" font-size="12" font-family="system-ui,sans-serif" fill="#1d2733">%s</text></g>`,
			template.HTMLEscapeString(title), x, yy, boxW, boxH, fill, stroke, x+8, yy+17, template.HTMLEscapeString(label))
	}
	for i, in := range cfg.Inbound {
		box(10, y(i), in.Name+" · "+in.Transport, "#eef4fb", "#8aa0b6", "interface "+in.Name)
	}
	for i, r := range cfg.Routes {
		box(colW+10, y(i), r.Name, "#f6f8fa", "#b6c2cf", "route "+r.Name+": "+r.When)
	}
	for i, d := range dests {
		fill, stroke := "#dafbe1", "#1a7f37"
		switch {
		case d.Breaker == "open":
			fill, stroke = "#ffebe9", "#cf222e"
		case d.Breaker == "half-open" || d.Paused:
			fill, stroke = "#fff8c5", "#9a6700"
		}
		label := d.Name
		if d.Breaker != "" {
			label += " · " + d.Breaker
		}
		box(2*colW+10, y(i), label, fill, stroke, "destination "+d.Name+" ("+d.Transport+")")
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from escaped configuration names only
}
