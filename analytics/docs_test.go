package analytics_test

import (
	"context"
	"os"
	"regexp"
	"strings"
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

// TestDocsNameEveryColumn: every column of every table the migrations
// create is named, in backquotes, in that table's section of
// docs/analytics.md ("### table ..." up to the next heading).
func TestDocsNameEveryColumn(t *testing.T) {
	raw, err := os.ReadFile("../docs/analytics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	ch := chtest.Start(t)
	ctx := context.Background()
	st, err := analytics.Open(ctx, ch.DSN("careflow"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(ctx, `SELECT c.table, c.name FROM system.columns AS c
		ANY INNER JOIN (SELECT name AS table, engine FROM system.tables WHERE database = 'careflow') USING (table)
		WHERE c.database = 'careflow' AND engine != 'View' ORDER BY c.table, c.name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tables := 0
	seen, missing := map[string]bool{}, map[string]bool{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		if !seen[table] {
			seen[table] = true
			tables++
		}
		start := strings.Index(doc, "\n### "+table+"\n")
		if start < 0 {
			start = strings.Index(doc, "\n### "+table+" ")
		}
		if start < 0 {
			if !missing[table] {
				missing[table] = true
				t.Errorf("docs/analytics.md has no section for table %s", table)
			}
			continue
		}
		section := doc[start+1:]
		if end := strings.Index(section[4:], "\n#"); end >= 0 {
			section = section[:end+4]
		}
		if !strings.Contains(section, "`"+col+"`") {
			t.Errorf("docs/analytics.md: table %s: column %s is not documented", table, col)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if tables < 10 {
		t.Errorf("checked %d tables; want every table the migrations create", tables)
	}
}
