package analytics_test

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
)

// TestDocQueriesRun runs every SQL block of docs/analytics.md against a
// real server with the current schema, so the ready queries stay ready.
func TestDocQueriesRun(t *testing.T) {
	doc, err := os.ReadFile("../docs/analytics.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 10 {
		t.Fatalf("docs/analytics.md has %d SQL queries; want at least 10", len(blocks))
	}
	ch := chtest.Start(t)
	ctx := context.Background()
	st, err := analytics.Open(ctx, ch.DSN("careflow"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}, Auth: clickhouse.Auth{Database: "careflow"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, b := range blocks {
		rows, err := conn.Query(ctx, string(b[1]))
		if err != nil {
			t.Errorf("query %d:\n%s\n%v", i+1, b[1], err)
			continue
		}
		rows.Close()
	}
}
