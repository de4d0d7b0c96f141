// This file holds the console's estate figures: per destination and per
// interface, over a window that ends now.

package analytics

import (
	"context"
	"fmt"
	"time"
)

// DestinationStats is one destination over a window. Counts are of
// distinct messages.
type DestinationStats struct {
	Destination string
	// Delivered, Rejected and Retrying count the messages delivered,
	// rejected, and with at least one retried attempt, in the window.
	Delivered, Rejected, Retrying uint64
	// Pending and OldestPending are the backlog now, whatever the
	// window: routed here, no final result yet, and when the oldest of
	// them was routed (zero when none).
	Pending       uint64
	OldestPending time.Time
	Breaches      uint64 // delivered in the window later than their SLA (sla_breaches)
	// The latest retried or rejected attempt in the window: careflow's
	// words for it (for rows written before migration 10, the code and
	// HL7 location), its error code, and when; all zero when none.
	LastError, LastErrorCode string
	LastErrorAt              time.Time
}

// Destinations returns the figures of every destination with a delivery
// attempt or an SLA breach since since, or a backlog now.
func (s *Store) Destinations(ctx context.Context, since time.Time) (map[string]DestinationStats, error) {
	out := map[string]DestinationStats{}
	set := func(d string, f func(*DestinationStats)) {
		st := out[d]
		st.Destination = d
		f(&st)
		out[d] = st
	}
	failed := "status IN ('retrying', 'rejected')"
	rows, err := s.conn.Query(ctx, `SELECT destination,
			uniqExactIf(message_id, status = 'delivered'),
			uniqExactIf(message_id, status = 'rejected'),
			uniqExactIf(message_id, status = 'retrying'),
			maxIf(at_ms, `+failed+`) AS last_ms,
			argMaxIf(error_code, at_ms, `+failed+`),
			argMaxIf(error_location, at_ms, `+failed+`),
			argMaxIf(error_text, at_ms, `+failed+`)
		FROM delivery_attempts FINAL
		WHERE day >= toDate(?) AND at_ms >= ?
		GROUP BY destination`, dayString(since), since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("analytics: destination figures from %s: %w", s.db, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d, code, loc, text string
		var delivered, rejected, retrying uint64
		var last int64
		if err := rows.Scan(&d, &delivered, &rejected, &retrying, &last, &code, &loc, &text); err != nil {
			return nil, fmt.Errorf("analytics: read destination figures: %w", err)
		}
		set(d, func(st *DestinationStats) {
			st.Delivered, st.Rejected, st.Retrying = delivered, rejected, retrying
			if last > 0 {
				st.LastErrorAt, st.LastErrorCode, st.LastError = fromMillis(last), code, text
				if text == "" {
					st.LastError = describeError(code, loc)
				}
			}
		})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	backlog, err := s.conn.Query(ctx, "SELECT destination, pending, oldest_routed_ms FROM backlog")
	if err != nil {
		return nil, fmt.Errorf("analytics: backlog from %s: %w", s.db, err)
	}
	defer backlog.Close()
	for backlog.Next() {
		var d string
		var n uint64
		var oldest int64
		if err := backlog.Scan(&d, &n, &oldest); err != nil {
			return nil, fmt.Errorf("analytics: read backlog: %w", err)
		}
		set(d, func(st *DestinationStats) { st.Pending, st.OldestPending = n, fromMillis(oldest) })
	}
	if err := backlog.Err(); err != nil {
		return nil, err
	}

	err = s.countBy(ctx, `SELECT destination, uniqExact(message_id) FROM sla_breaches
		WHERE day >= toDate(?) AND at_ms >= ? GROUP BY destination`, []any{dayString(since), since.UnixMilli()},
		func(d string, n uint64) { set(d, func(st *DestinationStats) { st.Breaches = n }) })
	if err != nil {
		return nil, fmt.Errorf("analytics: sla breaches per destination from %s: %w", s.db, err)
	}
	return out, nil
}

// describeError stands in for an attempt's text where none was kept.
func describeError(code, location string) string {
	switch {
	case code == "":
		return ""
	case location == "":
		return code
	}
	return code + " at " + location
}

// InterfaceStats is one inbound interface over a window. Counts are of
// distinct messages, or of records where no message is known.
type InterfaceStats struct {
	Interface string
	Accepted  uint64    // accepted by ingest in the window
	Rejected  uint64    // refused by ingest, or invalid or dead-lettered before routing, in the window
	LastAt    time.Time // the latest message accepted, whatever the window
	// OpenExceptions are the messages held for a person (the review
	// queue) and not decided yet, whatever the window.
	OpenExceptions uint64
	Exceptions     uint64 // exceptions raised in the window (every code and action)
	DeadLetters    uint64 // dead letters of its messages in the window, at every stage
}

// Interfaces returns the figures of every interface careflow has seen.
func (s *Store) Interfaces(ctx context.Context, since time.Time) (map[string]InterfaceStats, error) {
	out := map[string]InterfaceStats{}
	set := func(iface string, f func(*InterfaceStats)) {
		st := out[iface]
		st.Interface = iface
		f(&st)
		out[iface] = st
	}
	from := since.UnixMilli()
	// LastAt needs every ingest row, not only the window's: one query
	// reads all and counts the window's with -If.
	accepted := "stage = 'ingest' AND status = 'accepted'"
	rows, err := s.conn.Query(ctx, `SELECT interface,
			uniqExactIf(message_id, `+accepted+` AND stage_ms >= ?),
			uniqExactIf(if(message_id = '', row_id, message_id),
				stage IN ('ingest', 'validate', 'normalise') AND status IN ('invalid', 'dead_lettered') AND stage_ms >= ?),
			maxIf(stage_ms, `+accepted+`)
		FROM transitions FINAL
		WHERE interface != '' AND destination = ''
		GROUP BY interface`, from, from)
	if err != nil {
		return nil, fmt.Errorf("analytics: interface figures from %s: %w", s.db, err)
	}
	defer rows.Close()
	for rows.Next() {
		var iface string
		var acc, rej uint64
		var last int64
		if err := rows.Scan(&iface, &acc, &rej, &last); err != nil {
			return nil, fmt.Errorf("analytics: read interface figures: %w", err)
		}
		set(iface, func(st *InterfaceStats) { st.Accepted, st.Rejected, st.LastAt = acc, rej, fromMillis(last) })
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	counts := []struct {
		what, q string
		args    []any
		into    func(*InterfaceStats, uint64)
	}{
		{"dead letters", `SELECT interface, count() FROM dead_letters FINAL
			WHERE interface != '' AND day >= toDate(?) AND at_ms >= ? GROUP BY interface`,
			[]any{dayString(since), from}, func(st *InterfaceStats, n uint64) { st.DeadLetters = n }},
		{"exceptions", `SELECT interface, count() FROM exceptions FINAL
			WHERE interface != '' AND day >= toDate(?) AND at_ms >= ? GROUP BY interface`,
			[]any{dayString(since), from}, func(st *InterfaceStats, n uint64) { st.Exceptions = n }},
		{"open reviews", `SELECT interface, count() FROM (
				SELECT review_id, any(interface) AS interface, max(status != 'pending') AS decided
				FROM reviews FINAL GROUP BY review_id)
			WHERE decided = 0 AND interface != '' GROUP BY interface`,
			nil, func(st *InterfaceStats, n uint64) { st.OpenExceptions = n }},
	}
	for _, c := range counts {
		if err := s.countBy(ctx, c.q, c.args, func(iface string, n uint64) {
			set(iface, func(st *InterfaceStats) { c.into(st, n) })
		}); err != nil {
			return nil, fmt.Errorf("analytics: %s per interface from %s: %w", c.what, s.db, err)
		}
	}
	return out, nil
}

// countBy runs q, which selects a name and a count, and hands each row to
// f.
func (s *Store) countBy(ctx context.Context, q string, args []any, f func(string, uint64)) error {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n uint64
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		f(name, n)
	}
	return rows.Err()
}
