// This file holds the console's message search and the order history: the
// messages and message_keys tables, with each message's furthest status
// and the Kafka places of its raw record and canonical event.

package analytics

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/careflow-health/careflow/topics"
)

// MessageQuery selects messages. Zero fields select everything.
type MessageQuery struct {
	// Text matches exactly a message id, a correlation id, the sender's
	// control id (MSH-10) or an order number, placer or filler, as
	// number^namespace or the bare number.
	Text          string
	Interface     string
	MessageType   string    // "ADT", or "ADT^A01" for the trigger event too
	PatientHashes []string  // any of these (sink.PatientHash of the patient key)
	Since, Until  time.Time // ingest time in [Since, Until); zero: unbounded
	Limit         int       // default 100
}

// DefaultMessageLimit is how many messages Messages returns when the
// query sets no Limit.
const DefaultMessageLimit = 100

// Message is one message as the console shows it.
type Message struct {
	MessageID, CorrelationID, Interface, Transport, ControlID, MessageType, TriggerEvent, PatientHash string
	OrderNumbers                                                                                      []string // number^namespace, placer and filler, sorted
	IngestTime                                                                                        time.Time
	// Status is the latest status in transitions (delivered,
	// dead_lettered, retrying, ...); at one instant the later stage wins.
	Status string
	// Destinations is the latest status at each destination it was
	// routed to.
	Destinations map[string]string
	Raw          Source // its careflow.raw record
	Event        Source // its careflow.events record; zero when not normalised
}

// Messages returns the messages q selects, newest first.
func (s *Store) Messages(ctx context.Context, q MessageQuery) ([]Message, error) {
	var conds []string
	var args []any
	if q.Text != "" {
		conds = append(conds, `(message_id = ? OR correlation_id = ? OR control_id = ? OR message_id IN (
			SELECT message_id FROM message_keys FINAL WHERE value = ? OR splitByChar('^', value)[1] = ?))`)
		args = append(args, q.Text, q.Text, q.Text, q.Text, q.Text)
	}
	if q.Interface != "" {
		conds = append(conds, "interface = ?")
		args = append(args, q.Interface)
	}
	if q.MessageType != "" {
		typ, trigger, _ := strings.Cut(q.MessageType, "^")
		conds = append(conds, "message_type = ?")
		args = append(args, typ)
		if trigger != "" {
			conds = append(conds, "trigger_event = ?")
			args = append(args, trigger)
		}
	}
	if len(q.PatientHashes) > 0 {
		conds = append(conds, "has(?, patient_hash)")
		args = append(args, q.PatientHashes)
	}
	if !q.Since.IsZero() {
		// day too, so ClickHouse skips the older partitions and parts.
		conds = append(conds, "day >= toDate(?)", "ingest_ms >= ?")
		args = append(args, dayString(q.Since), q.Since.UnixMilli())
	}
	if !q.Until.IsZero() {
		conds = append(conds, "day <= toDate(?)", "ingest_ms < ?")
		args = append(args, dayString(q.Until), q.Until.UnixMilli())
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultMessageLimit
	}
	out, err := s.messages(ctx, conds, args, limit)
	if err != nil {
		return nil, fmt.Errorf("analytics: search messages in %s: %w", s.db, err)
	}
	return out, nil
}

// Message returns the message with id messageID, or ErrNoRows (also for a
// message the sink wrote before migration 9 created the messages table).
func (s *Store) Message(ctx context.Context, messageID string) (Message, error) {
	out, err := s.messages(ctx, []string{"message_id = ?"}, []any{messageID}, 1)
	if err != nil {
		return Message{}, fmt.Errorf("analytics: message %s: %w", messageID, err)
	}
	if len(out) == 0 {
		return Message{}, fmt.Errorf("message %s: %w", messageID, ErrNoRows)
	}
	return out[0], nil
}

// dayString is t's partition day as ClickHouse's toDate reads it; before
// 1970 (a zero time), the epoch, the first day a Date holds.
func dayString(t time.Time) string {
	if t.Before(time.Unix(0, 0)) {
		t = time.Unix(0, 0)
	}
	return t.UTC().Format(time.DateOnly)
}

// messages reads the messages rows that match conds, then adds what the
// other tables know of them.
func (s *Store) messages(ctx context.Context, conds []string, args []any, limit int) ([]Message, error) {
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	rows, err := s.conn.Query(ctx, `SELECT message_id, correlation_id, interface, transport, control_id,
			message_type, trigger_event, patient_hash, ingest_ms, raw_topic, raw_partition, raw_offset
		FROM messages FINAL `+where+`
		ORDER BY ingest_ms DESC, message_id DESC
		LIMIT `+fmt.Sprint(limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var ingest int64
		if err := rows.Scan(&m.MessageID, &m.CorrelationID, &m.Interface, &m.Transport, &m.ControlID,
			&m.MessageType, &m.TriggerEvent, &m.PatientHash, &ingest, &m.Raw.Topic, &m.Raw.Partition, &m.Raw.Offset); err != nil {
			return nil, err
		}
		m.IngestTime = fromMillis(ingest)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil || len(out) == 0 {
		return nil, err
	}
	byID := make(map[string]*Message, len(out))
	ids := make([]string, len(out))
	for i := range out {
		byID[out[i].MessageID] = &out[i]
		ids[i] = out[i].MessageID
	}
	if err := s.addStatuses(ctx, ids, byID); err != nil {
		return nil, err
	}
	return out, s.addOrderNumbers(ctx, ids, byID)
}

// stageRank orders the stages of one journey, so that of two transitions
// in the same millisecond the later stage's status wins.
func stageRank() string {
	names := make([]string, len(topics.Stages))
	for i, st := range topics.Stages {
		names[i] = quoteString(st)
	}
	return "indexOf([" + strings.Join(names, ", ") + "], stage)"
}

// addStatuses sets each message's latest status, per destination and
// overall, and the place of its canonical event.
func (s *Store) addStatuses(ctx context.Context, ids []string, byID map[string]*Message) error {
	// stage_ms * 16 + rank: one sortable number (Int64 holds it for
	// millennia), as 18.16's argMax takes no tuple.
	order := "stage_ms * 16 + " + stageRank()
	rows, err := s.conn.Query(ctx, `SELECT message_id, destination,
			argMax(status, `+order+`) AS last_status, max(`+order+`) AS last_at,
			argMaxIf(source_topic, stage_ms, stage = ? AND status = 'normalised'),
			argMaxIf(source_partition, stage_ms, stage = ? AND status = 'normalised'),
			argMaxIf(source_offset, stage_ms, stage = ? AND status = 'normalised')
		FROM transitions FINAL
		WHERE has(?, message_id)
		GROUP BY message_id, destination`, topics.StageNormalise, topics.StageNormalise, topics.StageNormalise, ids)
	if err != nil {
		return fmt.Errorf("statuses: %w", err)
	}
	defer rows.Close()
	latest := map[string]int64{}
	for rows.Next() {
		var id, dest, status string
		var at int64
		var ev Source
		if err := rows.Scan(&id, &dest, &status, &at, &ev.Topic, &ev.Partition, &ev.Offset); err != nil {
			return fmt.Errorf("read statuses: %w", err)
		}
		m := byID[id]
		if m == nil {
			continue
		}
		if ev.Topic != "" {
			m.Event = ev
		}
		if dest != "" {
			if m.Destinations == nil {
				m.Destinations = map[string]string{}
			}
			m.Destinations[dest] = status
		}
		if prev, ok := latest[id]; !ok || at > prev {
			latest[id], m.Status = at, status
		}
	}
	return rows.Err()
}

func (s *Store) addOrderNumbers(ctx context.Context, ids []string, byID map[string]*Message) error {
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT message_id, value FROM message_keys FINAL
		WHERE has(?, message_id) AND kind IN (?, ?)`, ids, KeyPlacerOrder, KeyFillerOrder)
	if err != nil {
		return fmt.Errorf("order numbers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, v string
		if err := rows.Scan(&id, &v); err != nil {
			return fmt.Errorf("read order numbers: %w", err)
		}
		if m := byID[id]; m != nil && !contains(m.OrderNumbers, v) {
			m.OrderNumbers = append(m.OrderNumbers, v)
		}
	}
	for _, m := range byID {
		sort.Strings(m.OrderNumbers)
	}
	return rows.Err()
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// OrderHistory returns every state change of the orders numbered
// orderNumbers (placer or filler, as number^namespace or the bare
// number), in time order; nil for none.
func (s *Store) OrderHistory(ctx context.Context, orderNumbers []string) ([]OrderTransition, error) {
	var numbers []string
	for _, n := range orderNumbers {
		if n != "" { // "" would match every order without a filler number
			numbers = append(numbers, n)
		}
	}
	if len(numbers) == 0 {
		return nil, nil
	}
	rows, err := s.conn.Query(ctx, `SELECT row_id, placer_order, filler_order, patient_hash, from_state, state,
			message_id, correlation_id, interface, message_type, trigger_event, at_ms
		FROM order_transitions FINAL
		WHERE has(?, placer_order) OR has(?, filler_order)
			OR has(?, splitByChar('^', placer_order)[1]) OR has(?, splitByChar('^', filler_order)[1])
		ORDER BY at_ms, row_id`, numbers, numbers, numbers, numbers)
	if err != nil {
		return nil, fmt.Errorf("analytics: order history of %v: %w", numbers, err)
	}
	defer rows.Close()
	var out []OrderTransition
	for rows.Next() {
		var o OrderTransition
		var at int64
		if err := rows.Scan(&o.TransitionID, &o.PlacerOrder, &o.FillerOrder, &o.PatientHash, &o.FromState, &o.State,
			&o.MessageID, &o.CorrelationID, &o.Interface, &o.MessageType, &o.TriggerEvent, &at); err != nil {
			return nil, fmt.Errorf("analytics: read order history: %w", err)
		}
		o.At = fromMillis(at)
		out = append(out, o)
	}
	return out, rows.Err()
}
