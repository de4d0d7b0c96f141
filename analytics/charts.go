// This file holds the series behind the console's charts: deliveries and
// latency per destination in fixed steps, and rejections by code.

package analytics

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Point is one value of a series at the start of its step.
type Point struct {
	At    time.Time
	Value float64
}

// Series is one line of a chart, a destination's.
type Series struct {
	Label  string
	Points []Point
}

// MaxPoints bounds the steps of one chart: a window over a small step
// would otherwise ask for millions of points.
const MaxPoints = 10_000

// ErrBadWindow reports a chart asked for an empty window, a step that is
// not positive, or more than MaxPoints steps.
var ErrBadWindow = errors.New("analytics: bad chart window")

// steps checks the window and returns its number of steps: the last one
// may end after until.
func steps(since, until time.Time, step time.Duration) (int, error) {
	if step < time.Millisecond || !until.After(since) {
		return 0, fmt.Errorf("%w: [%s, %s) in steps of %s", ErrBadWindow, since.Format(time.RFC3339), until.Format(time.RFC3339), step)
	}
	n := (until.Sub(since) + step - 1) / step
	if n > MaxPoints {
		return 0, fmt.Errorf("%w: %d steps of %s; at most %d", ErrBadWindow, n, step, MaxPoints)
	}
	return int(n), nil
}

// DeliveredPer returns, per destination with a delivery attempt in
// [since, until), the messages delivered in each step from since: a point
// at every step, 0 where none was. Sorted by destination.
func (s *Store) DeliveredPer(ctx context.Context, since, until time.Time, step time.Duration) ([]Series, error) {
	n, err := steps(since, until, step)
	if err != nil {
		return nil, err
	}
	series, err := s.perStep(ctx, since, until, step, "toFloat64(uniqExactIf(message_id, status = 'delivered'))", "")
	if err != nil {
		return nil, fmt.Errorf("analytics: deliveries per %s from %s: %w", step, s.db, err)
	}
	for i := range series {
		full := make([]Point, n)
		for k := range full {
			full[k].At = since.Add(time.Duration(k) * step).UTC()
		}
		for _, p := range series[i].Points {
			full[p.At.Sub(since)/step].Value = p.Value
		}
		series[i].Points = full
	}
	return series, nil
}

// LatencyPer returns, per destination with a delivery attempt in [since,
// until), the p95 of ingest to acknowledged delivery, in milliseconds, of
// the messages delivered in each step; no point for a step without one.
// Sorted by destination.
func (s *Store) LatencyPer(ctx context.Context, since, until time.Time, step time.Duration) ([]Series, error) {
	if _, err := steps(since, until, step); err != nil {
		return nil, err
	}
	series, err := s.perStep(ctx, since, until, step,
		"quantileIf(0.95)(toFloat64(at_ms - ingest_ms), status = 'delivered' AND ingest_ms > 0)",
		"countIf(status = 'delivered' AND ingest_ms > 0) > 0")
	if err != nil {
		return nil, fmt.Errorf("analytics: latency per %s from %s: %w", step, s.db, err)
	}
	return series, nil
}

// perStep reads value per destination and step from delivery_attempts; a
// step where having is false yields no point, but its destination still
// gets a series.
func (s *Store) perStep(ctx context.Context, since, until time.Time, step time.Duration, value, having string) ([]Series, error) {
	from, to, width := since.UnixMilli(), until.UnixMilli(), step.Milliseconds()
	keep := "1"
	if having != "" {
		keep = having
	}
	rows, err := s.conn.Query(ctx, `SELECT destination, intDiv(at_ms - ?, ?) AS k, `+value+` AS v, `+keep+` AS keep
		FROM delivery_attempts FINAL
		WHERE day >= toDate(?) AND day <= toDate(?) AND at_ms >= ? AND at_ms < ?
		GROUP BY destination, k
		ORDER BY destination, k`, from, width, dayString(since), dayString(until), from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Series
	for rows.Next() {
		var d string
		var k int64
		var v float64
		var ok uint8
		if err := rows.Scan(&d, &k, &v, &ok); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Label != d {
			out = append(out, Series{Label: d})
		}
		if ok == 1 {
			last := &out[len(out)-1]
			last.Points = append(last.Points, Point{At: since.Add(time.Duration(k) * step).UTC(), Value: v})
		}
	}
	return out, rows.Err()
}

// CodeCount is how many messages ended a stage with one error code.
type CodeCount struct {
	Stage, Code string
	Count       uint64
}

// RejectionsByCode returns the messages invalid, rejected or
// dead-lettered since since, by stage and error code, largest first. A
// message rejected and then dead-lettered with the same code counts once;
// an unreadable record without a message id counts as one each.
func (s *Store) RejectionsByCode(ctx context.Context, since time.Time) ([]CodeCount, error) {
	rows, err := s.conn.Query(ctx, `SELECT stage, error_code, uniqExact(if(message_id = '', row_id, message_id)) AS n
		FROM transitions FINAL
		WHERE day >= toDate(?) AND stage_ms >= ? AND status IN ('invalid', 'rejected', 'dead_lettered')
		GROUP BY stage, error_code
		ORDER BY n DESC, stage, error_code`, dayString(since), since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("analytics: rejections by code from %s: %w", s.db, err)
	}
	defer rows.Close()
	var out []CodeCount
	for rows.Next() {
		var c CodeCount
		if err := rows.Scan(&c.Stage, &c.Code, &c.Count); err != nil {
			return nil, fmt.Errorf("analytics: read rejections by code: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
