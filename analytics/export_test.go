package analytics

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// QueryRowForTest runs a query on the store's connection, for tests of
// the views.
func (s *Store) QueryRowForTest(ctx context.Context, q string, args ...any) driver.Row {
	return s.conn.QueryRow(ctx, q, args...)
}

// LimitMigrationsForTest makes Open apply only the first n migrations,
// as an older careflow would; the returned function undoes it.
func LimitMigrationsForTest(n int) (restore func()) {
	all := migrations
	migrations = all[:n]
	return func() { migrations = all }
}

// ExecForTest runs a statement on the store's connection.
func (s *Store) ExecForTest(ctx context.Context, q string) error { return s.conn.Exec(ctx, q) }
