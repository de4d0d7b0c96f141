package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const analyticsBase = `
inbound: [{name: ehr, listen: 127.0.0.1:2575}]
`

func TestAnalyticsDefaultsAndValues(t *testing.T) {
	c, err := Parse("t.yaml", []byte(analyticsBase), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if c.Analytics.Enabled() || c.Analytics.BatchRows != 1000 || c.Analytics.BatchInterval != time.Second {
		t.Errorf("defaults = %+v; want no sink, 1000 rows, 1s", c.Analytics)
	}
	c, err = Parse("t.yaml", []byte(analyticsBase+`analytics:
  clickhouse: {dsn: "clickhouse://127.0.0.1:9000/careflow"}
  batch_rows: 5000
  batch_interval: 250ms
`), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Analytics.Enabled() || c.Analytics.BatchRows != 5000 || c.Analytics.BatchInterval != 250*time.Millisecond {
		t.Errorf("analytics = %+v", c.Analytics)
	}
}

func TestAnalyticsProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       string
	}{
		{"zero rows", "analytics: {batch_rows: 0}", "t.yaml:3: analytics.batch_rows: must be between 1 and 1000000"},
		{"huge rows", "analytics: {batch_rows: 2000000}", "t.yaml:3: analytics.batch_rows: must be between 1 and 1000000"},
		{"zero interval", "analytics: {batch_interval: 0s}", `t.yaml:3: analytics.batch_interval: want a positive duration, got "0s"`},
		{"wrong scheme", `analytics: {clickhouse: {dsn: "http://127.0.0.1:8123"}}`, "t.yaml:3: analytics.clickhouse.dsn: want clickhouse://host:9000/database"},
		{"no port", `analytics: {clickhouse: {dsn: "clickhouse://db.local/careflow"}}`, "t.yaml:3: analytics.clickhouse.dsn: want a host and port: clickhouse://host:9000/database"},
		{"nested database", `analytics: {clickhouse: {dsn: "clickhouse://db:9000/a/b"}}`, "t.yaml:3: analytics.clickhouse.dsn: the database name must be one plain name"},
		{"unknown key", `analytics: {clickhouse: {url: "x"}}`, `t.yaml:3: analytics.clickhouse.url: unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(analyticsBase+tc.yaml+"\n"), WithLookupEnv(noEnv))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error = %v; want Problems", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error =\n%v\nwant it to contain\n%s", err, tc.want)
			}
		})
	}
}
