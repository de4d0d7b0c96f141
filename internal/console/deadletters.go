package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/replay"
	"github.com/careflow-health/careflow/topics"
)

type deadLettersView struct {
	Filter              replay.Filter
	Since               string
	All                 bool
	Letters             []replay.Letter
	Stages, Interfaces  []string
	Destinations, Codes []string
	Error               string
}

func (c *Console) deadLetterFilter(r *http.Request) (replay.Filter, string, bool, error) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	}
	f := replay.Filter{Stage: q.Get("stage"), Code: strings.TrimSpace(q.Get("code")), Interface: q.Get("interface"),
		Destination: q.Get("destination"), NotReplayed: q.Get("all") == ""}
	since := q.Get("since")
	if since != "" {
		d, err := time.ParseDuration(since)
		if err != nil || d <= 0 {
			return f, since, !f.NotReplayed, fmt.Errorf("since %q: want a duration such as 1h or 24h", since)
		}
		f.Since = c.cfg.Now().Add(-d)
	}
	return f, since, !f.NotReplayed, nil
}

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	f, since, all, err := c.deadLetterFilter(r)
	v := deadLettersView{Filter: f, Since: since, All: all, Stages: topics.Stages}
	for _, in := range c.cfg.Estate.Inbound {
		v.Interfaces = append(v.Interfaces, in.Name)
	}
	for _, d := range c.cfg.Estate.Destinations {
		v.Destinations = append(v.Destinations, d.Name)
	}
	if err != nil {
		v.Error = err.Error()
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
		defer cancel()
		if v.Letters, err = replay.List(ctx, c.cfg.Kafka, c.cfg.Serde, f); err != nil {
			v.Error = "reading the dead-letter topics: " + err.Error()
		}
		if len(v.Letters) > maxRows {
			v.Error = fmt.Sprintf("%d dead letters match; the newest %d are shown: narrow the filter", len(v.Letters), maxRows)
			v.Letters = v.Letters[:maxRows]
		}
	}
	c.render(w, r, s, "deadletters", v)
}

type deadLetterView struct {
	Letter  *replay.Letter
	Patient bool
	Value   string // the original record, for roles that see patient data
	Detail  string // the destination's own words (may quote patient data)
	Headers [][2]string
}

func (c *Console) deadLetterPage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	l, err := replay.Get(ctx, c.cfg.Kafka, c.cfg.Serde, r.PathValue("id"))
	switch {
	case errors.Is(err, replay.ErrNotFound):
		c.fail(w, r, s, http.StatusNotFound, err)
		return
	case err != nil:
		c.fail(w, r, s, http.StatusBadGateway, err)
		return
	}
	v := deadLetterView{Letter: l, Patient: c.seesPatients(s)}
	if l.Record != nil {
		for _, h := range l.Record.OriginalHeaders {
			v.Headers = append(v.Headers, [2]string{h.Key, string(h.Value)})
		}
		if v.Patient {
			v.Value = c.original(ctx, l)
			v.Detail = l.Record.ErrorDetail
			c.record(r, s, TypePatientDataViewed, "R", EntityMessage, l.MessageID, "dead letter "+l.ID)
		}
	}
	c.render(w, r, s, "deadletter", v)
}

// replay replays the letters ticked (ids) or, when none is, none: the
// console never replays a filter it did not show.
func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	_ = r.ParseForm()
	ids := r.PostForm["id"]
	if len(ids) == 0 {
		c.fail(w, r, s, http.StatusBadRequest, errors.New("tick the dead letters to replay"))
		return
	}
	// A closed tab must not cut the transaction short: its outcome would
	// be unknown to the operator who asked for it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), writeTimeout)
	defer cancel()
	res, err := replay.Replay(ctx, c.cfg.Kafka, c.cfg.Serde, replay.Request{
		Filter: replay.Filter{IDs: ids}, By: s.User, Reason: strings.TrimSpace(r.PostFormValue("reason")),
		Again: r.PostFormValue("again") != "", At: c.cfg.Now(), Observer: c.cfg.Observer + " console", Network: remoteHost(r),
	})
	switch {
	case errors.Is(err, replay.ErrNoReason):
		c.fail(w, r, s, http.StatusBadRequest, errors.New("a replay needs a reason: it is recorded with who replayed it"))
		return
	case errors.Is(err, replay.ErrNotFound):
		c.fail(w, r, s, http.StatusNotFound, err)
		return
	case err != nil:
		c.fail(w, r, s, http.StatusBadGateway, fmt.Errorf("replay: %w", err))
		return
	}
	var msg []string
	for _, l := range res.Replayed {
		msg = append(msg, "replayed "+l.ID+" onto "+l.OriginalTopic)
	}
	for _, x := range res.Refused {
		msg = append(msg, "refused "+x.Letter.ID+": "+x.Err.Error())
	}
	back := Prefix + "deadletters"
	if len(ids) == 1 && r.PostFormValue("from") == "letter" {
		back += "/" + ids[0]
	}
	c.flash(r, strings.Join(msg, "; "))
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// original is a dead letter's original record as a person reads it: the
// message as received for a raw record, the canonical event as JSON for
// an event, the bytes themselves for what ingest refused (it never became
// a record).
func (c *Console) original(ctx context.Context, l *replay.Letter) string {
	b := l.Record.OriginalValue
	switch {
	case l.OriginalTopic == topics.Raw || l.OriginalTopic == topics.Valid:
		var m avro.RawMessage
		if err := c.cfg.Serde.DecodeContext(ctx, b, &m); err == nil {
			b = m.Payload
		}
	case l.OriginalTopic == topics.Events || topics.DestinationOf(l.OriginalTopic) != "":
		var ev avro.ClinicalEvent
		if err := c.cfg.Serde.DecodeContext(ctx, b, &ev); err == nil {
			if j, err := json.MarshalIndent(&ev, "", "  "); err == nil {
				return string(j)
			}
		}
	}
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), "\r", "\n")
}

// Bounds on what one page may cost: reads of careflow's topics, the writes
// of a replay or decision, and the rows a list shows.
const (
	readTimeout  = 20 * time.Second
	writeTimeout = 30 * time.Second
	maxRows      = 500
)
