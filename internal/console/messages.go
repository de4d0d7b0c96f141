package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/sink"
)

// errNoAnalytics answers a page that needs ClickHouse when there is none.
var errNoAnalytics = errors.New("this page needs ClickHouse: set analytics.clickhouse.dsn (make run starts one when clickhouse-server is installed)")

type messagesView struct {
	Query   analytics.MessageQuery
	Patient string // the identifier searched for; only for roles that see patient data
	// CanPatient offers the patient search: roles that see patient data.
	CanPatient bool
	Interfaces []string
	Since      string
	Messages   []analytics.Message
	Searched   bool
	Error      string
}

func (c *Console) seesPatients(s *session) bool {
	return s != nil && c.cfg.Estate.Console.SeesPatientData(s.Role)
}

func (c *Console) messagesPage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	q := r.URL.Query()
	v := messagesView{Since: q.Get("since"), CanPatient: c.seesPatients(s)}
	for _, in := range c.cfg.Estate.Inbound {
		v.Interfaces = append(v.Interfaces, in.Name)
	}
	v.Query = analytics.MessageQuery{Text: strings.TrimSpace(q.Get("q")), Interface: q.Get("interface"),
		MessageType: strings.TrimSpace(q.Get("type")), Limit: 100}
	if v.Since == "" {
		v.Since = "24h"
	}
	if d, err := time.ParseDuration(v.Since); err == nil && d > 0 {
		v.Query.Since = c.cfg.Now().Add(-d)
	} else {
		v.Error = fmt.Sprintf("since %q: want a duration such as 30m, 24h or 168h", v.Since)
	}
	if p := strings.TrimSpace(q.Get("patient")); p != "" {
		if !c.seesPatients(s) {
			c.fail(w, r, s, http.StatusForbidden, errors.New("your role ("+s.Role+") may not search by patient identifier"))
			return
		}
		v.Patient = p
		// The raw records are keyed by the identifier as the interface
		// chose it (value^authority); analytics keeps only its hash.
		v.Query.PatientHashes = []string{sink.PatientHash([]byte(p))}
		c.record(r, s, TypePatientDataViewed, avro.AuditRead, EntityMessage, "search", "search by patient identifier")
	}
	switch {
	case c.analytics() == nil:
		v.Error = errNoAnalytics.Error()
	case v.Error == "":
		msgs, err := c.analytics().Messages(r.Context(), v.Query)
		if err != nil {
			v.Error = "search failed: " + err.Error()
		}
		v.Messages, v.Searched = msgs, true
	}
	if r.Header.Get("HX-Request") != "" && r.Header.Get("HX-Target") == "results" {
		c.renderBlock(w, s, "messages", "results", http.StatusOK, v)
		return
	}
	c.render(w, r, s, "messages", v)
}

// form is one shape a message took: raw as received, canonical, or
// rendered for a destination.
type form struct {
	Name, Body string
}

type messageView struct {
	Message  analytics.Message
	Steps    []analytics.Step
	Acks     []analytics.Step // delivery attempts: each destination's answer
	Orders   []analytics.OrderTransition
	Related  []string // messages sharing its correlation id (an order's results)
	Patient  bool     // the viewer sees patient data
	Forms    []form
	Problems []string // forms that could not be fetched, and why
}

func (c *Console) messagePage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	if c.analytics() == nil {
		c.fail(w, r, s, http.StatusServiceUnavailable, errNoAnalytics)
		return
	}
	id := r.PathValue("id")
	ctx := r.Context()
	m, err := c.analytics().Message(ctx, id)
	if errors.Is(err, analytics.ErrNoRows) {
		c.fail(w, r, s, http.StatusNotFound, fmt.Errorf("no message %s in ClickHouse (the sink may not have written it yet)", id))
		return
	}
	if err != nil {
		c.fail(w, r, s, http.StatusBadGateway, err)
		return
	}
	v := messageView{Message: m, Patient: c.seesPatients(s)}
	steps, err := c.analytics().Trace(ctx, m.MessageID)
	if err != nil && !errors.Is(err, analytics.ErrNoRows) {
		v.Problems = append(v.Problems, "journey: "+err.Error())
	}
	v.Steps, v.Related = ownSteps(m.MessageID, steps)
	for _, st := range v.Steps {
		if st.Attempt > 0 || st.AckCode != "" || st.HTTPStatus != 0 {
			v.Acks = append(v.Acks, st)
		}
	}
	if len(m.OrderNumbers) > 0 {
		if v.Orders, err = c.analytics().OrderHistory(ctx, m.OrderNumbers); err != nil {
			v.Problems = append(v.Problems, "order lifecycle: "+err.Error())
		}
	}
	if !v.Patient {
		m.PatientHash = ""
		v.Message = m
	} else {
		v.Forms, v.Problems = c.forms(ctx, m, v.Steps, v.Problems)
		c.record(r, s, TypePatientDataViewed, avro.AuditRead, EntityMessage, m.MessageID, "raw, canonical and rendered forms")
	}
	c.render(w, r, s, "message", v)
}

// forms fetches the message as received (careflow.raw), its canonical
// event (careflow.events), and renders the event for each destination its
// journey reached, as that destination's configuration renders it now.
func (c *Console) forms(ctx context.Context, m analytics.Message, steps []analytics.Step, problems []string) ([]form, []string) {
	var out []form
	if m.Raw.Topic != "" {
		var raw avro.RawMessage
		if err := c.fetchInto(ctx, m.Raw, &raw); err != nil {
			problems = append(problems, "raw message: "+err.Error())
		} else {
			body := strings.ReplaceAll(strings.ToValidUTF8(string(raw.Payload), "\uFFFD"), "\r", "\n")
			out = append(out, form{Name: "Raw, as received (" + raw.Transport + ", writer " + raw.Writer + ")", Body: body})
		}
	}
	if m.Event.Topic == "" {
		return out, problems
	}
	rec, err := c.fetch(ctx, m.Event)
	if err != nil {
		return out, append(problems, "canonical event: "+err.Error())
	}
	var ev avro.ClinicalEvent
	if err := c.cfg.Serde.DecodeContext(ctx, rec.Value, &ev); err != nil {
		return out, append(problems, "canonical event: "+err.Error())
	}
	b, _ := json.MarshalIndent(&ev, "", "  ")
	out = append(out, form{Name: "Canonical (careflow.events)", Body: string(b)})
	if c.cfg.Render == nil {
		return out, problems
	}
	var dests []string
	for _, st := range steps {
		if st.Destination != "" && !slices.Contains(dests, st.Destination) {
			dests = append(dests, st.Destination)
		}
	}
	for _, d := range dests {
		// Each destination's fields profile removes fields in place: each
		// gets its own copy of the event, decoded afresh.
		var own avro.ClinicalEvent
		if err := c.cfg.Serde.DecodeContext(ctx, rec.Value, &own); err != nil {
			problems = append(problems, "rendered for "+d+": "+err.Error())
			continue
		}
		p, err := c.cfg.Render(d, &own)
		if err != nil {
			problems = append(problems, "rendered for "+d+": "+err.Error())
			continue
		}
		out = append(out, form{Name: "Rendered for " + d, Body: strings.ReplaceAll(string(p), "\r", "\n")})
	}
	return out, problems
}

// fetchInto reads the one record at src and decodes it into v.
func (c *Console) fetchInto(ctx context.Context, src analytics.Source, v any) error {
	rec, err := c.fetch(ctx, src)
	if err != nil {
		return err
	}
	return c.cfg.Serde.DecodeContext(ctx, rec.Value, v)
}

func (c *Console) fetch(ctx context.Context, src analytics.Source) (*kgo.Record, error) {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, c.cfg.Kafka...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{src.Topic: {src.Partition: kgo.NewOffset().At(src.Offset)}}))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				return nil, fmt.Errorf("%s partition %d offset %d: %w", src.Topic, src.Partition, src.Offset, fe.Err)
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s partition %d offset %d: not found within 5s (expired by retention, or the broker is slow)", src.Topic, src.Partition, src.Offset)
		}
		var found *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if found == nil && r.Offset >= src.Offset {
				found = r
			}
		})
		if found != nil {
			if found.Offset != src.Offset {
				return nil, fmt.Errorf("%s partition %d offset %d: no longer there", src.Topic, src.Partition, src.Offset)
			}
			return found, nil
		}
	}
}

// ownSteps splits a trace into the message's own steps and the other
// messages it reached: Trace follows the correlation id too, which a
// result shares with its order, so an order's trace holds its results'
// deliveries, which are not the order's.
func ownSteps(id string, steps []analytics.Step) (own []analytics.Step, related []string) {
	for _, st := range steps {
		if st.MessageID == id {
			own = append(own, st)
		} else if !slices.Contains(related, st.MessageID) {
			related = append(related, st.MessageID)
		}
	}
	return own, related
}
