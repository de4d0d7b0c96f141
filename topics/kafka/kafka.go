// Package kafka connects careflow to its backbone: it starts the embedded
// broker (franz-go's kfake, persisted to a data directory) when no external
// Kafka is named, and creates the topics the configured pipeline needs.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/topics"
)

// DefaultEmbeddedPort is where the embedded broker listens, so that kcat
// and other Kafka tools find it at 127.0.0.1:9092.
const DefaultEmbeddedPort = 9092

// Embedded is an in-process Kafka broker persisted under a directory.
type Embedded struct {
	cluster *kfake.Cluster
}

// EmbeddedConfig configures the embedded broker.
type EmbeddedConfig struct {
	DataDir string // required: topics and offsets survive restarts here
	// Host to bind. Default: 127.0.0.1 (the embedded broker has no
	// authentication, so it stays on loopback unless told otherwise).
	Host string
	// Port to bind. Default: 9092. Use -1 for a random free port.
	Port int
	// SyncWrites fsyncs every write: safe against power loss, about ten
	// times slower. Without it a process crash (even SIGKILL) loses
	// nothing, because writes reach the page cache.
	SyncWrites bool
	// Partitions for topics created on demand. Default: 6.
	Partitions int
	// MaxMessageBytes is the largest record batch the broker accepts.
	// Default: MaxMessageBytes (the package constant).
	MaxMessageBytes int
}

// MaxMessageBytes is the record size careflow allows on its topics by
// default: a 4 MiB HL7 message (a scanned report in OBX-5) grows by the Avro
// envelope and, in a dead letter, by its headers; Kafka's own default
// (1 MB) would refuse it, and ingest would answer AR for ever.
const MaxMessageBytes = 10 << 20

// StartEmbedded starts the broker. It fails fast, naming the port, when the
// port is taken (another careflow may be running).
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded kafka: a data directory is required")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultEmbeddedPort
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = MaxMessageBytes
	}
	opts := []kfake.Opt{
		kfake.DataDir(cfg.DataDir),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(cfg.MaxMessageBytes)}),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.ClusterID("careflow-embedded"),
	}
	if cfg.Port > 0 {
		// kfake listens on all interfaces for a bare port; bind the
		// configured host only.
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
		opts = append(opts, kfake.Ports(cfg.Port), kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, addr)
		}))
	} else {
		opts = append(opts, kfake.NumBrokers(1), kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(cfg.Host, "0"))
		}))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on port %d (data %s): %w", cfg.Port, cfg.DataDir, err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs are the broker's listen addresses.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker, flushing its state to disk.
func (e *Embedded) Close() { e.cluster.Close() }

// Cluster exposes the broker for tests that inject faults.
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Pipeline lists every topic a pipeline with these destinations uses.
func Pipeline(destinations []string) []string {
	ts := []string{topics.Raw, topics.Valid, topics.Events, topics.Outcomes, topics.Audit, topics.Exceptions, topics.PatientState, topics.Orders, topics.OrderState,
		topics.OrderClaims, topics.OrderIndex, topics.Patients, topics.Review, topics.FHIR, topics.Replays}
	for _, d := range destinations {
		ts = append(ts, topics.Outbound(d))
	}
	for _, s := range topics.Stages {
		ts = append(ts, topics.DeadLetter(s))
	}
	// The analytics sink is not in topics.Stages (it is not on the
	// message path) but dead-letters records it cannot read.
	ts = append(ts, topics.DeadLetter(topics.StageSink))
	return ts
}

// EnsureTopics creates each missing topic with the given partitions and
// replication factor, allowing records of maxBytes, and compacted when it
// is a stage's changelog (topics.IsState); existing topics are left as
// they are (an operator who created them owns their settings).
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32, replication int16, maxBytes int, names ...string) error {
	var logs, state []string
	for _, n := range names {
		if topics.IsState(n) {
			state = append(state, n)
		} else {
			logs = append(logs, n)
		}
	}
	mb := strconv.Itoa(maxBytes)
	if err := createTopics(ctx, cl, partitions, replication, map[string]*string{"max.message.bytes": &mb}, logs); err != nil {
		return err
	}
	// A stage's changelog keeps the last record per key for ever: its
	// state must outlive any retention.
	compact := "compact"
	return createTopics(ctx, cl, partitions, replication, map[string]*string{"max.message.bytes": &mb, "cleanup.policy": &compact}, state)
}

func createTopics(ctx context.Context, cl *kgo.Client, partitions int32, replication int16, configs map[string]*string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	adm := kadm.NewClient(cl)
	// A broker that has just started may not answer metadata at once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := adm.CreateTopics(ctx, partitions, replication, configs, names...)
		if err == nil {
			for _, r := range resp.Sorted() {
				if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
					return fmt.Errorf("create topic %s (%d partitions, replication %d): %w", r.Topic, partitions, replication, r.Err)
				}
			}
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("create topics: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CheckCoPartitioned returns an error naming the first topic of names whose
// partition count differs from the first's. careflow's state follows its
// input's partition number (dedup sets are rebuilt from the same
// partition of a stage's output, a stages.Table from the same partition
// of its changelog), so topics created by hand, or before kafka.partitions
// changed, must agree.
func CheckCoPartitioned(ctx context.Context, cl *kgo.Client, names ...string) error {
	if len(names) < 2 {
		return nil
	}
	td, err := kadm.NewClient(cl).ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	want := -1
	for _, n := range names {
		d, ok := td[n]
		if !ok || d.Err != nil {
			continue
		}
		switch got := len(d.Partitions); {
		case want < 0:
			want = got
		case got != want:
			return fmt.Errorf("topic %s has %d partitions but %s has %d: careflow keeps each stage's state on the partition of its input, "+
				"so every careflow topic needs the same count; add partitions to the smaller (kafka-topics --alter --partitions %d) "+
				"or recreate it", n, got, names[0], want, max(got, want))
		}
	}
	return nil
}
