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
