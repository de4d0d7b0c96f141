// This file holds the lists the operators' console pages through: recent
// exceptions and the audit trail, newest first.

package analytics

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ListQuery selects recent rows of one kind. Empty fields match all.
type ListQuery struct {
	Since     time.Time
	Code      string // exceptions: the code; audit: the record type
	Interface string // exceptions only
	Limit     int    // default 200
}

func (q ListQuery) limit() int {
	if q.Limit <= 0 {
		return 200
	}
	return q.Limit
}

// Exceptions returns the exceptions q selects, newest first.
func (s *Store) Exceptions(ctx context.Context, q ListQuery) ([]Exception, error) {
	conds, args := []string{"at_ms >= ?"}, []any{q.Since.UnixMilli()}
	if q.Code != "" {
		conds, args = append(conds, "code = ?"), append(args, q.Code)
	}
	if q.Interface != "" {
		conds, args = append(conds, "interface = ?"), append(args, q.Interface)
	}
	rows, err := s.conn.Query(ctx, `SELECT row_id, code, stage, interface, message_id, correlation_id, control_id,
			patient_hash, placer_order, filler_order, reason, action, at_ms
		FROM exceptions FINAL WHERE `+strings.Join(conds, " AND ")+
		fmt.Sprintf(" ORDER BY at_ms DESC, row_id LIMIT %d", q.limit()), args...)
	if err != nil {
		return nil, fmt.Errorf("analytics: exceptions from %s: %w", s.db, err)
	}
	defer rows.Close()
	var out []Exception
	for rows.Next() {
		var x Exception
		var at int64
		if err := rows.Scan(&x.ExceptionID, &x.Code, &x.Stage, &x.Interface, &x.MessageID, &x.CorrelationID, &x.ControlID,
			&x.PatientHash, &x.PlacerOrder, &x.FillerOrder, &x.Reason, &x.Action, &at); err != nil {
			return nil, fmt.Errorf("analytics: read exceptions: %w", err)
		}
		x.At = fromMillis(at)
		out = append(out, x)
	}
	return out, rows.Err()
}

// AuditTrail returns the audit records q selects, newest first.
func (s *Store) AuditTrail(ctx context.Context, q ListQuery) ([]Audit, error) {
	conds, args := []string{"recorded_ms >= ?"}, []any{q.Since.UnixMilli()}
	if q.Code != "" {
		conds, args = append(conds, "type = ?"), append(args, q.Code)
	}
	rows, err := s.conn.Query(ctx, `SELECT row_id, recorded_ms, type, action, outcome, outcome_desc, agent_type, agent_who,
			agent_network, source_observer, entity_type, entity_what, entity_detail, count
		FROM audit FINAL WHERE `+strings.Join(conds, " AND ")+
		fmt.Sprintf(" ORDER BY recorded_ms DESC, row_id LIMIT %d", q.limit()), args...)
	if err != nil {
		return nil, fmt.Errorf("analytics: audit from %s: %w", s.db, err)
	}
	defer rows.Close()
	var out []Audit
	for rows.Next() {
		var a Audit
		var at int64
		var n uint32
		if err := rows.Scan(&a.AuditID, &at, &a.Type, &a.Action, &a.Outcome, &a.OutcomeDesc, &a.AgentType, &a.AgentWho,
			&a.AgentNetwork, &a.SourceObserver, &a.EntityType, &a.EntityWhat, &a.EntityDetail, &n); err != nil {
			return nil, fmt.Errorf("analytics: read audit: %w", err)
		}
		a.Recorded, a.Count = fromMillis(at), int(n)
		out = append(out, a)
	}
	return out, rows.Err()
}
