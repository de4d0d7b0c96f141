// Package analytics is careflow's ClickHouse model: the tables the sink
// stage fills, their versioned migrations, and the queries behind `careflow
// sla`, `careflow trace`, the operators' web console and docs/analytics.md.
//
// Every row has a deterministic identity (row_id: an outcome id, a message
// id and stage, or a dead letter's topic/partition/offset) and every table
// is a ReplacingMergeTree ordered by (day, row_id), where day comes from the
// row itself. Inserting a row twice, which a sink replay does, leaves one
// row after a merge, and every query here reads with FINAL or counts
// distinct message ids, so a replay never counts a message twice.
//
// The schema sticks to what ClickHouse 18.16 (Debian's) and current
// releases share: no Map, no DateTime64, no LowCardinality; times with
// milliseconds are Int64 milliseconds since the Unix epoch (*_ms), and every
// INSERT names its columns.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Store is a connection to careflow's ClickHouse database. It is safe for
// concurrent use.
type Store struct {
	conn driver.Conn
	db   string
	// version is the schema version migrate left: columns a later
	// migration added are written only when it is reached.
	version uint32
}

// DefaultDatabase is used when the DSN names none.
const DefaultDatabase = "careflow"

// Open connects to the server in dsn (clickhouse://host:9000/database),
// creates the database when missing and applies every pending migration.
// It fails when the server does not answer; the sink retries it.
func Open(ctx context.Context, dsn string) (*Store, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("analytics: clickhouse dsn: %w", err)
	}
	db := opts.Auth.Database
	if db == "" {
		db = DefaultDatabase
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > 5*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.ReadTimeout == 0 || opts.ReadTimeout > time.Minute {
		// A stopped server must fail an insert soon, so the sink can retry.
		opts.ReadTimeout = time.Minute
	}
	// The database may not exist yet: create it from the default one.
	opts.Auth.Database = "default"
	boot, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("analytics: connect to clickhouse %v: %w", opts.Addr, err)
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db))
	boot.Close()
	if err != nil {
		return nil, fmt.Errorf("analytics: create database %s on %v: %w", db, opts.Addr, err)
	}
	opts.Auth.Database = db
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("analytics: connect to clickhouse %v: %w", opts.Addr, err)
	}
	s := &Store{conn: conn, db: db}
	if err := s.migrate(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the connections.
func (s *Store) Close() error { return s.conn.Close() }

// Database is the database the store uses.
func (s *Store) Database() string { return s.db }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "") + "`"
}

// migration is one schema step. Steps are applied in order, once; each
// statement is idempotent (IF NOT EXISTS) so that two sinks starting
// together, or a step interrupted half-way, do no harm.
type migration struct {
	version     uint32
	description string
	statements  []string
}

// SchemaVersion is the latest schema version this build knows.
func SchemaVersion() uint32 { return migrations[len(migrations)-1].version }

// migrate applies the migrations the database has not recorded yet.
func (s *Store) migrate(ctx context.Context) error {
	err := s.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version UInt32, description String, applied_at DateTime
	) ENGINE = ReplacingMergeTree() ORDER BY version`)
	if err != nil {
		return fmt.Errorf("analytics: create schema_migrations in %s: %w", s.db, err)
	}
	current, err := s.Version(ctx)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		for i, stmt := range m.statements {
			if err := s.conn.Exec(ctx, stmt); err != nil && !columnExists(err) {
				return fmt.Errorf("analytics: migration %d (%s) statement %d: %w", m.version, m.description, i+1, err)
			}
		}
		// A batch, not INSERT ... VALUES through Exec: clickhouse-go's
		// Exec insert waits for ever on 18.16.
		err := s.insert(ctx, "schema_migrations", "version, description, applied_at", 1, func(int) []any {
			return []any{m.version, m.description, time.Now().UTC()}
		})
		if err != nil {
			return fmt.Errorf("analytics: record migration %d: %w", m.version, err)
		}
	}
	s.version, err = s.Version(ctx)
	return err
}

// columnExists reports whether err is ClickHouse's "column with this name
// already exists" (code 44): another careflow applied the same ADD COLUMN
// first.
func columnExists(err error) bool {
	var exc *clickhouse.Exception
	return errors.As(err, &exc) && exc.Code == 44
}

// Version is the highest migration applied to the database, 0 when none.
func (s *Store) Version(ctx context.Context) (uint32, error) {
	var v uint32
	row := s.conn.QueryRow(ctx, "SELECT toUInt32(max(version)) FROM schema_migrations")
	if err := row.Scan(&v); err != nil {
		return 0, fmt.Errorf("analytics: read schema version of %s: %w", s.db, err)
	}
	return v, nil
}

// ErrNoRows reports a lookup that found nothing, such as a trace of an
// unknown message id.
var ErrNoRows = errors.New("analytics: no rows")
