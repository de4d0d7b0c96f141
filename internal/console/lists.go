package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/review"
)

// This file holds the pages that list: exceptions, the review queue (and
// its decisions), the users and the audit trail.

type listView struct {
	Query   analytics.ListQuery
	Since   string
	Patient bool
	Rows    any
	Error   string
}

// since parses the since parameter (default 24h).
func (c *Console) since(r *http.Request) (string, time.Time, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		v = "24h"
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return v, time.Time{}, fmt.Errorf("since %q: want a duration such as 1h, 24h or 168h", v)
	}
	return v, c.cfg.Now().Add(-d), nil
}

func (c *Console) exceptionsPage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	since, at, err := c.since(r)
	v := listView{Since: since, Patient: c.seesPatients(s),
		Query: analytics.ListQuery{Since: at, Code: strings.TrimSpace(r.URL.Query().Get("code")), Interface: r.URL.Query().Get("interface")}}
	switch {
	case err != nil:
		v.Error = err.Error()
	case c.analytics() == nil:
		v.Error = errNoAnalytics.Error()
	default:
		rows, err := c.analytics().Exceptions(r.Context(), v.Query)
		if err != nil {
			v.Error = err.Error()
		}
		if !v.Patient {
			for i := range rows {
				rows[i].PatientHash = ""
			}
		}
		v.Rows = rows
	}
	c.render(w, r, s, "exceptions", v)
}

type reviewsView struct {
	All     bool
	Items   []*avro.Review
	Patient bool
	Error   string
}

func (c *Console) reviewsPage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	v := reviewsView{All: r.URL.Query().Get("all") != "", Patient: c.seesPatients(s)}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	q, err := review.Read(ctx, c.cfg.Kafka, c.cfg.Serde)
	if err != nil {
		v.Error = "reading the review queue: " + err.Error()
	} else {
		status := avro.ReviewPending
		if v.All {
			status = ""
		}
		for _, x := range q.List(status) {
			cp := *x
			if !v.Patient {
				cp.PatientKey = ""
			}
			v.Items = append(v.Items, &cp)
		}
	}
	c.render(w, r, s, "reviews", v)
}

func (c *Console) decide(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	id, decision := r.PathValue("id"), r.PathValue("decision")
	if decision != "approve" && decision != "reject" {
		c.fail(w, r, s, http.StatusNotFound, fmt.Errorf("no decision %q: approve or reject", decision))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), writeTimeout)
	defer cancel()
	x, err := review.Decide(ctx, c.cfg.Kafka, c.cfg.Serde, review.Decision{
		ID: id, Approve: decision == "approve", By: s.User, Reason: strings.TrimSpace(r.PostFormValue("reason")), At: c.cfg.Now(),
	})
	switch {
	case errors.Is(err, review.ErrNoReason):
		c.fail(w, r, s, http.StatusBadRequest, errors.New("a rejection needs a reason: it is recorded with the decision"))
		return
	case errors.Is(err, review.ErrNotFound):
		c.fail(w, r, s, http.StatusNotFound, err)
		return
	case errors.Is(err, review.ErrDecided):
		c.flash(r, err.Error())
		http.Redirect(w, r, Prefix+"reviews", http.StatusSeeOther)
		return
	case err != nil:
		c.fail(w, r, s, http.StatusBadGateway, err)
		return
	}
	c.record(r, s, TypeReviewDecided, avro.AuditExecute, EntityReview, x.ReviewID, x.Status+": "+x.DecisionReason)
	msg := x.ReviewID + " " + x.Status
	if x.Status == avro.ReviewApproved {
		msg += ": the message continues through " + x.Stage + ", once"
	}
	c.flash(r, msg)
	http.Redirect(w, r, Prefix+"reviews", http.StatusSeeOther)
}

func (c *Console) usersPage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	type row struct {
		Name, Role string
		Patient    bool
	}
	var rows []row
	for _, u := range c.cfg.Users.List() {
		rows = append(rows, row{u.Name, u.Role, c.cfg.Estate.Console.SeesPatientData(u.Role)})
	}
	c.render(w, r, s, "users", map[string]any{"Users": rows, "File": c.cfg.Estate.Console.UsersFile})
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	since, at, err := c.since(r)
	v := listView{Since: since, Query: analytics.ListQuery{Since: at, Code: r.URL.Query().Get("type")}}
	switch {
	case err != nil:
		v.Error = err.Error()
	case c.analytics() == nil:
		v.Error = errNoAnalytics.Error()
	default:
		rows, err := c.analytics().AuditTrail(r.Context(), v.Query)
		if err != nil {
			v.Error = err.Error()
		}
		v.Rows = rows
	}
	c.render(w, r, s, "audit", v)
}
