// This file is the schema, as migrations. Never edit a released step: add
// a new one. docs/analytics.md documents every table and column.

package analytics

// commonColumns open every fact table: the partition day and the row's
// deterministic identity (the dedup key with day).
const commonColumns = `
	day Date,
	row_id String,`

// The engine clause of every fact table: a replayed row (same day and
// row_id) collapses into one; inserted_at picks the last copy.
const factEngine = `ENGINE = ReplacingMergeTree(inserted_at)
	PARTITION BY toYYYYMM(day)
	ORDER BY (day, row_id)`

var migrations = []migration{
	{version: 1, description: "transitions, delivery_attempts, dead_letters, message_slas", statements: []string{
		`CREATE TABLE IF NOT EXISTS transitions (` + commonColumns + `
			message_id String,
			correlation_id String,
			interface String,
			destination String,
			message_type String,
			trigger_event String,
			patient_hash String,
			stage String,
			status String,
			error_code String,
			error_location String,
			event_ms Int64,
			ingest_ms Int64,
			stage_ms Int64,
			source_topic String,
			source_partition Int32,
			source_offset Int64,
			inserted_at DateTime
		) ` + factEngine,
		`CREATE TABLE IF NOT EXISTS delivery_attempts (` + commonColumns + `
			message_id String,
			correlation_id String,
			interface String,
			destination String,
			message_type String,
			trigger_event String,
			patient_hash String,
			attempt UInt32,
			status String,
			control_id String,
			ack_code String,
			http_status UInt16,
			error_code String,
			error_location String,
			latency_ms Int64,
			ingest_ms Int64,
			at_ms Int64,
			inserted_at DateTime
		) ` + factEngine,
		`CREATE TABLE IF NOT EXISTS dead_letters (` + commonColumns + `
			stage String,
			error_code String,
			error_location String,
			error_text String,
			message_id String,
			correlation_id String,
			interface String,
			patient_hash String,
			original_topic String,
			original_partition Int32,
			original_offset Int64,
			at_ms Int64,
			inserted_at DateTime
		) ` + factEngine,
		`CREATE TABLE IF NOT EXISTS message_slas (` + commonColumns + `
			message_id String,
			destination String,
			route String,
			sla_ms Int64,
			inserted_at DateTime
		) ` + factEngine,
	}},
	{version: 2, description: "views: throughput, delivery results, latency, failures, backlog", statements: []string{
		// One row per minute, interface, destination, stage and status.
		`CREATE VIEW IF NOT EXISTS throughput_per_minute AS
			SELECT toStartOfMinute(toDateTime(intDiv(stage_ms, 1000))) AS minute,
				interface, destination, stage, status, uniqExact(message_id) AS messages
			FROM transitions FINAL
			GROUP BY minute, interface, destination, stage, status`,
		// The final result of each message at each destination.
		`CREATE VIEW IF NOT EXISTS delivery_results AS
			SELECT day, message_id, correlation_id, interface, destination, message_type, trigger_event,
				status, attempt, ack_code, http_status, error_code, error_location,
				ingest_ms, at_ms, at_ms - ingest_ms AS end_to_end_ms
			FROM delivery_attempts FINAL
			WHERE status IN ('delivered', 'rejected')`,
		// Ingest to acknowledged delivery, per destination and hour.
		`CREATE VIEW IF NOT EXISTS latency_per_hour AS
			SELECT toStartOfHour(toDateTime(intDiv(at_ms, 1000))) AS hour, interface, destination,
				count() AS delivered,
				quantiles(0.5, 0.95, 0.99)(end_to_end_ms) AS p50_p95_p99_ms
			FROM delivery_results
			WHERE status = 'delivered'
			GROUP BY hour, interface, destination`,
		// Failures (invalid, retried, dead-lettered) and business
		// rejections, by stage and error code.
		`CREATE VIEW IF NOT EXISTS failures_by_code AS
			SELECT interface, destination, stage, status, error_code, uniqExact(message_id) AS messages
			FROM transitions FINAL
			WHERE status IN ('invalid', 'rejected', 'retrying', 'dead_lettered') OR error_code != ''
			GROUP BY interface, destination, stage, status, error_code`,
		// Routed to a destination but with no final result there yet.
		`CREATE VIEW IF NOT EXISTS backlog AS
			SELECT destination, count() AS pending, min(routed_ms) AS oldest_routed_ms
			FROM (
				SELECT destination, message_id,
					minIf(stage_ms, status = 'routed') AS routed_ms,
					max(status IN ('delivered', 'rejected')) AS done
				FROM transitions FINAL
				WHERE destination != ''
				GROUP BY destination, message_id
			)
			WHERE routed_ms > 0 AND done = 0
			GROUP BY destination`,
	}},
	{version: 3, description: "view: sla_breaches", statements: []string{
		// Delivered later than the SLA the sink recorded for the message
		// at that destination (the route's, which inherits the
		// destination's when it sets none).
		`CREATE VIEW IF NOT EXISTS sla_breaches AS
			SELECT day, message_id, interface, destination, message_type, trigger_event,
				ingest_ms, at_ms, end_to_end_ms, target_ms AS sla_ms, sla_route AS route
			FROM delivery_results
			ANY INNER JOIN (
				SELECT message_id, destination, argMin(route, sla_ms) AS sla_route, min(sla_ms) AS target_ms
				FROM message_slas FINAL
				GROUP BY message_id, destination
			) USING (message_id, destination)
			WHERE status = 'delivered' AND end_to_end_ms > target_ms`,
	}},
	{version: 4, description: "audit", statements: []string{
		// Who did what to careflow, shaped after FHIR AuditEvent: refused
		// writers, configurations loaded, schema registry writes.
		`CREATE TABLE IF NOT EXISTS audit (` + commonColumns + `
			recorded_ms Int64,
			type String,
			action String,
			outcome String,
			outcome_desc String,
			agent_type String,
			agent_who String,
			agent_network String,
			source_observer String,
			entity_type String,
			entity_what String,
			entity_detail String,
			count UInt32,
			inserted_at DateTime
		) ` + factEngine,
	}},
	{version: 5, description: "exceptions", statements: []string{
		// What careflow would otherwise have overwritten or dropped
		// silently (careflow.exceptions): stale updates, and later results
		// without orders and the rest of docs/workflows.md.
		`CREATE TABLE IF NOT EXISTS exceptions (` + commonColumns + `
			code String,
			stage String,
			interface String,
			message_id String,
			correlation_id String,
			control_id String,
			patient_hash String,
			placer_order String,
			filler_order String,
			reason String,
			action String,
			at_ms Int64,
			inserted_at DateTime
		) ` + factEngine,
	}},
	{version: 6, description: "order_transitions", statements: []string{
		// Every order changing state (careflow.orders): placed, accepted,
		// rejected, in_progress, preliminary, final, corrected, cancelled.
		`CREATE TABLE IF NOT EXISTS order_transitions (` + commonColumns + `
			placer_order String,
			filler_order String,
			patient_hash String,
			from_state String,
			state String,
			message_id String,
			correlation_id String,
			interface String,
			message_type String,
			trigger_event String,
			at_ms Int64,
			inserted_at DateTime
		) ` + factEngine,
	}},
	{version: 7, description: "reviews", statements: []string{
		// The review queue (careflow.review): every message held for a
		// person, and every decision with who made it and when; one row
		// per state of an item (pending, then approved or rejected).
		`CREATE TABLE IF NOT EXISTS reviews (` + commonColumns + `
			review_id String,
			status String,
			code String,
			stage String,
			reason String,
			location String,
			interface String,
			message_id String,
			correlation_id String,
			control_id String,
			message_type String,
			patient_hash String,
			held_at_ms Int64,
			decided_by String,
			decided_at_ms Int64,
			decision_reason String,
			inserted_at DateTime
		) ` + factEngine,
	}},
	{version: 8, description: "delivery_attempts.remote_ids", statements: []string{
		// The ids a destination gave what it stored (a FHIR server's
		// Patient/123/_history/1): where a delivered event now lives. Two
		// sinks starting together both run it: migrate takes "already
		// exists" as done (18.16 has no ADD COLUMN IF NOT EXISTS).
		`ALTER TABLE delivery_attempts ADD COLUMN remote_ids Array(String)`,
	}},
	{version: 9, description: "messages, message_keys", statements: []string{
		// One row per message ingest accepted (careflow.raw): what an
		// operator searches by (the sender's MSH-10 is on no other table)
		// and where the raw record is, so the console can fetch the bytes
		// from Kafka instead of ClickHouse keeping them.
		`CREATE TABLE IF NOT EXISTS messages (` + commonColumns + `
			message_id String,
			correlation_id String,
			interface String,
			transport String,
			control_id String,
			message_type String,
			trigger_event String,
			patient_hash String,
			ingest_ms Int64,
			raw_topic String,
			raw_partition Int32,
			raw_offset Int64,
			inserted_at DateTime
		) ` + factEngine,
		// The keys a normalised message is known by besides its ids (its
		// orders' numbers, careflow.events). A table of its own: a second
		// source writing the same row_id into messages would replace the
		// raw row instead of adding to it.
		`CREATE TABLE IF NOT EXISTS message_keys (` + commonColumns + `
			message_id String,
			kind String,
			value String,
			inserted_at DateTime
		) ` + factEngine,
	}},
	{version: 10, description: "delivery_attempts.error_text", statements: []string{
		// careflow's words for a failed attempt ("destination lab, attempt
		// 2: connection refused"), never the destination's, which may name
		// the patient. "Already exists" is done, as in migration 8.
		`ALTER TABLE delivery_attempts ADD COLUMN error_text String`,
	}},
}
