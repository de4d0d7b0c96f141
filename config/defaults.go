// This file is the one place careflow's configuration defaults live. The
// decoder starts from these values and lays the file over them, so a key the
// file leaves out keeps its default and a key it sets (even to zero) is
// checked as written. docs/configuration.md lists the same values; change
// both together.

package config

import (
	"time"

	"github.com/careflow-health/careflow/avro"
)

// Defaults returns the configuration careflow uses for every key a file
// leaves out. It has no interfaces, destinations or routes.
func Defaults() Config {
	return Config{
		Kafka: Kafka{
			Listen:             "127.0.0.1:9092",
			DataDir:            "data/kafka",
			Partitions:         6,
			Replication:        1,
			SyncWrites:         false,
			TransactionRecords: 500,
		},
		Admin: Admin{Listen: "127.0.0.1:9464"},
		HTTP:  HTTPListener{Listen: "127.0.0.1:8080"},
		// No DSN: no sink until a ClickHouse is named.
		Analytics: Analytics{BatchRows: 1000, BatchInterval: time.Second},
		Console:   Console{PatientDataRoles: []string{RoleOperator, RoleAdmin}, SessionTTL: 8 * time.Hour},
	}
}

// DefaultInbound returns the values every inbound interface starts from.
func DefaultInbound() Inbound {
	return Inbound{
		Transport:             avro.TransportMLLP,
		MaxMessageSize:        4 << 20,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           10 * time.Minute,
		FirstByteTimeout:      30 * time.Second,
		HandshakeTimeout:      10 * time.Second,
		MaxConnections:        100,
		MaxConnectionsPerPeer: 20,
		Charset:               "UTF-8",
		Ack:                   AckValidated,
		DedupWindow:           168 * time.Hour,
		ReplyTimeout:          5 * time.Minute,
		UnknownOrder:          UnknownOrderDeliver,
	}
}

// DefaultDestination returns the values every destination starts from.
func DefaultDestination() Destination {
	return Destination{
		Transport:          avro.TransportMLLP,
		Format:             avro.FormatHL7v2,
		HL7Version:         "2.5.1",
		SendingApplication: "CAREFLOW",
		Charset:            "UTF-8",
		AckTimeout:         30 * time.Second,
		ConnectTimeout:     5 * time.Second,
		Retry:              Retry{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2},
		Breaker:            Breaker{Failures: 5, OpenFor: 30 * time.Second},
		SLA:                60 * time.Second,
	}
}

// DefaultCodeMap returns the values every code map starts from.
func DefaultCodeMap() CodeMap {
	return CodeMap{Unmapped: UnmappedPass}
}
