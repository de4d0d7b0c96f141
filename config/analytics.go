// This file is the analytics section: where the sink stage writes
// (ClickHouse) and how it batches. Without a DSN there is no sink.

package config

import (
	"net"
	"net/url"
	"strings"
	"time"
)

// Analytics configures the sink stage, which feeds ClickHouse.
type Analytics struct {
	ClickHouse ClickHouse `yaml:"clickhouse"`
	// BatchRows bounds the records of one ClickHouse insert.
	BatchRows int `yaml:"batch_rows"`
	// BatchInterval bounds how long a record waits for its batch.
	BatchInterval time.Duration `yaml:"batch_interval"`
}

// ClickHouse names the server and database.
type ClickHouse struct {
	// DSN is clickhouse://[user[:password]@]host:port/database; empty
	// turns the sink off.
	DSN string `yaml:"dsn"`
}

// Enabled reports whether the sink runs.
func (a Analytics) Enabled() bool { return a.ClickHouse.DSN != "" }

func (d *decoder) validateAnalytics(a Analytics) {
	if a.BatchRows < 1 || a.BatchRows > 1_000_000 {
		d.problemAt("analytics.batch_rows", "must be between 1 and 1000000")
	}
	if a.BatchInterval <= 0 {
		d.problemAt("analytics.batch_interval", "must be more than 0")
	}
	if a.ClickHouse.DSN == "" {
		return
	}
	key := "analytics.clickhouse.dsn"
	u, err := url.Parse(a.ClickHouse.DSN)
	if err != nil || u.Scheme != "clickhouse" {
		d.problemAt(key, "want clickhouse://host:9000/database")
		return
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || u.Hostname() == "" || port == "" {
		d.problemAt(key, "want a host and port: clickhouse://host:9000/database")
	}
	if db := strings.Trim(u.Path, "/"); strings.ContainsAny(db, "/`") {
		d.problemAt(key, "the database name must be one plain name")
	}
}
