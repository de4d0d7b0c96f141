// This file holds the queries behind `careflow sla` and `careflow trace`,
// and the backlog the sink exports to Prometheus.

package analytics

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Filter narrows a report. Zero values select everything.
type Filter struct {
	Since       time.Time // rows whose stage time is at or after Since
	Interface   string
	Destination string
}

// SLARow is one line of the SLA report: one interface and destination
// ("" for what happened before routing: acceptance, validation,
// normalisation).
type SLARow struct {
	Interface   string
	Destination string
	Messages    uint64 // distinct messages seen
	Delivered   uint64
	// P50, P95 and P99 are ingest-to-delivered latencies of the delivered
	// messages; zero when none was delivered.
	P50, P95, P99 time.Duration
	Failed        uint64 // invalid, retried, dead-lettered or errored at some stage
	Rejected      uint64 // business rejections by the destination (AE, AR, HTTP 4xx)
	Backlog       uint64 // routed here, no final result yet
	Breaches      uint64 // delivered later than the SLA, or pending longer than it
}

// FailurePct is Failed as a percentage of Messages.
func (r SLARow) FailurePct() float64 { return pct(r.Failed, r.Messages) }

// RejectionPct is Rejected as a percentage of Messages.
func (r SLARow) RejectionPct() float64 { return pct(r.Rejected, r.Messages) }

func pct(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// Targets are the SLAs of the configuration: per destination, applied to a
// message unless the route that took it there declared its own (recorded
// by the sink in message_slas).
type Targets map[string]time.Duration

// targetExpr is a ClickHouse expression for the SLA, in ms, of a row with
// columns destination and route_sla_ms; 0 means none.
func (t Targets) targetExpr() string {
	names := make([]string, 0, len(t))
	for d := range t {
		names = append(names, d)
	}
	sort.Strings(names)
	def := "toInt64(0)"
	if len(names) > 0 {
		var ks, vs []string
		for _, d := range names {
			ks = append(ks, quoteString(d))
			vs = append(vs, "toInt64("+strconv.FormatInt(t[d].Milliseconds(), 10)+")")
		}
		def = "transform(destination, [" + strings.Join(ks, ", ") + "], [" + strings.Join(vs, ", ") + "], toInt64(0))"
	}
	return "if(route_sla_ms > 0, route_sla_ms, " + def + ")"
}

func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// SLA returns the report per interface and destination, sorted by both.
// now is the instant pending messages are measured against.
func (s *Store) SLA(ctx context.Context, f Filter, targets Targets, now time.Time) ([]SLARow, error) {
	where, args := f.where("stage_ms")
	pending := "(destination != '' AND routed = 1 AND delivered_ms = 0 AND rejected = 0)"
	target := targets.targetExpr()
	q := `SELECT interface, destination,
			count() AS n_messages,
			countIf(delivered_ms > 0) AS n_delivered,
			quantilesIf(0.5, 0.95, 0.99)(delivered_ms - msg_ingest_ms, delivered_ms > 0) AS n_quantiles,
			countIf(failed = 1) AS n_failed,
			countIf(rejected = 1) AS n_rejected,
			countIf(` + pending + `) AS n_backlog,
			countIf(` + target + ` > 0 AND (
				(delivered_ms > 0 AND delivered_ms - msg_ingest_ms > ` + target + `) OR
				(` + pending + ` AND ` + strconv.FormatInt(now.UnixMilli(), 10) + ` - msg_ingest_ms > ` + target + `))) AS n_breaches
		FROM (
			SELECT interface, destination, message_id,
				max(ingest_ms) AS msg_ingest_ms,
				maxIf(stage_ms, status = 'delivered') AS delivered_ms,
				max(status = 'routed') AS routed,
				max(status = 'rejected') AS rejected,
				max(status IN ('invalid', 'retrying', 'dead_lettered') OR (error_code != '' AND status != 'rejected')) AS failed
			FROM transitions FINAL
			` + where + `
			GROUP BY interface, destination, message_id
		) ANY LEFT JOIN (
			SELECT message_id, destination, min(sla_ms) AS route_sla_ms
			FROM message_slas FINAL
			GROUP BY message_id, destination
		) USING (message_id, destination)
		GROUP BY interface, destination
		ORDER BY interface, destination`
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("analytics: sla report from %s: %w", s.db, err)
	}
	defer rows.Close()
	var out []SLARow
	for rows.Next() {
		var r SLARow
		var qs []float64
		if err := rows.Scan(&r.Interface, &r.Destination, &r.Messages, &r.Delivered, &qs,
			&r.Failed, &r.Rejected, &r.Backlog, &r.Breaches); err != nil {
			return nil, fmt.Errorf("analytics: read sla report: %w", err)
		}
		if len(qs) == 3 {
			r.P50, r.P95, r.P99 = millis(qs[0]), millis(qs[1]), millis(qs[2])
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func millis(v float64) time.Duration {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return time.Duration(v * float64(time.Millisecond)).Round(time.Millisecond)
}

// where builds a WHERE clause for f over the time column col.
func (f Filter) where(col string) (string, []any) {
	var conds []string
	var args []any
	if !f.Since.IsZero() {
		conds = append(conds, col+" >= ?")
		args = append(args, f.Since.UnixMilli())
	}
	if f.Interface != "" {
		conds = append(conds, "interface = ?")
		args = append(args, f.Interface)
	}
	if f.Destination != "" {
		conds = append(conds, "destination = ?")
		args = append(args, f.Destination)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return "WHERE " + strings.Join(conds, " AND "), args
}

// Step is one stage of a message's journey.
type Step struct {
	Transition
	// For delivery attempts: the attempt number, the destination's
	// answer and the attempt's round trip.
	Attempt    int
	AckCode    string
	HTTPStatus int
	Latency    time.Duration
	// ErrorText is the dead letter's reason, when the step dead-lettered.
	ErrorText string
}

// Trace returns every step of the message with id messageID (a message id
// or a correlation id) in time order, or ErrNoRows.
func (s *Store) Trace(ctx context.Context, messageID string) ([]Step, error) {
	rows, err := s.conn.Query(ctx, `SELECT row_id, message_id, correlation_id, interface, destination,
			message_type, trigger_event, patient_hash, stage, status, error_code, error_location,
			event_ms, ingest_ms, stage_ms, source_topic, source_partition, source_offset
		FROM transitions FINAL
		WHERE message_id = ? OR correlation_id = ?
		ORDER BY stage_ms, row_id`, messageID, messageID)
	if err != nil {
		return nil, fmt.Errorf("analytics: trace message %s: %w", messageID, err)
	}
	defer rows.Close()
	var steps []Step
	for rows.Next() {
		var st Step
		t := &st.Transition
		var event, ingest, at int64
		if err := rows.Scan(&t.RowID, &t.MessageID, &t.CorrelationID, &t.Interface, &t.Destination,
			&t.MessageType, &t.TriggerEvent, &t.PatientHash, &t.Stage, &t.Status, &t.ErrorCode, &t.ErrorLocation,
			&event, &ingest, &at, &t.Source.Topic, &t.Source.Partition, &t.Source.Offset); err != nil {
			return nil, fmt.Errorf("analytics: read trace of %s: %w", messageID, err)
		}
		t.EventTime, t.IngestTime, t.StageTime = fromMillis(event), fromMillis(ingest), fromMillis(at)
		steps = append(steps, st)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("message %s: %w", messageID, ErrNoRows)
	}
	if err := s.addAttempts(ctx, messageID, steps); err != nil {
		return nil, err
	}
	return steps, s.addDeadLetters(ctx, messageID, steps)
}

func (s *Store) addAttempts(ctx context.Context, id string, steps []Step) error {
	rows, err := s.conn.Query(ctx, `SELECT row_id, attempt, ack_code, http_status, latency_ms
		FROM delivery_attempts FINAL WHERE message_id = ? OR correlation_id = ?`, id, id)
	if err != nil {
		return fmt.Errorf("analytics: delivery attempts of %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var rowID, ack string
		var attempt uint32
		var status uint16
		var lat int64
		if err := rows.Scan(&rowID, &attempt, &ack, &status, &lat); err != nil {
			return fmt.Errorf("analytics: read delivery attempts of %s: %w", id, err)
		}
		for i := range steps {
			if steps[i].RowID == rowID {
				steps[i].Attempt, steps[i].AckCode, steps[i].HTTPStatus = int(attempt), ack, int(status)
				steps[i].Latency = time.Duration(lat) * time.Millisecond
			}
		}
	}
	return rows.Err()
}

func (s *Store) addDeadLetters(ctx context.Context, id string, steps []Step) error {
	rows, err := s.conn.Query(ctx, `SELECT row_id, error_text FROM dead_letters FINAL
		WHERE message_id = ? OR correlation_id = ?`, id, id)
	if err != nil {
		return fmt.Errorf("analytics: dead letters of %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var rowID, text string
		if err := rows.Scan(&rowID, &text); err != nil {
			return fmt.Errorf("analytics: read dead letters of %s: %w", id, err)
		}
		for i := range steps {
			if steps[i].RowID == rowID {
				steps[i].ErrorText = text
			}
		}
	}
	return rows.Err()
}

func fromMillis(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Backlog returns, per destination, the messages routed there with no
// final result yet.
func (s *Store) Backlog(ctx context.Context) (map[string]uint64, error) {
	rows, err := s.conn.Query(ctx, "SELECT destination, pending FROM backlog")
	if err != nil {
		return nil, fmt.Errorf("analytics: backlog from %s: %w", s.db, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var d string
		var n uint64
		if err := rows.Scan(&d, &n); err != nil {
			return nil, fmt.Errorf("analytics: read backlog: %w", err)
		}
		out[d] = n
	}
	return out, rows.Err()
}

// Count returns the rows of table after collapsing repeats (FINAL): what
// every query sees. Tests and the benchmark use it.
func (s *Store) Count(ctx context.Context, table string) (uint64, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+quoteIdent(table)+" FINAL").Scan(&n); err != nil {
		return 0, fmt.Errorf("analytics: count %s.%s: %w", s.db, table, err)
	}
	return n, nil
}
