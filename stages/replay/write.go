package replay

// Writing: the replayed records, their markers and their audit records,
// in one transaction.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/audit"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// TransactionalID is the one transactional id every replay uses: replays
// are rare, and two operators replaying at once then fence each other
// whichever letters they chose.
const TransactionalID = "careflow-dlq-replay"

// Request is one replay: the letters Filter selects, put back by By, for
// Reason.
type Request struct {
	Filter Filter
	By     string // who: the operating-system user for the CLI
	Reason string // required, except for a dry run: recorded with each replay
	// Again replays letters already replayed, once more.
	Again bool
	// DryRun returns what would be replayed and refused, and writes
	// nothing.
	DryRun bool
	At     time.Time // Default: time.Now.
	// Observer names the tool or instance replaying (the audit record's
	// source.observer).
	Observer string
	// Network is where By replayed from (the console: the browser's
	// address); "" for the CLI.
	Network string
}

// Refusal is a selected letter that was not replayed, and why.
type Refusal struct {
	Letter Letter
	Err    error // wraps ErrReplayed or ErrNotReplayable
}

// Result is what a replay did: the letters replayed, in their originals'
// order (each with this replay's Mark last in its Replays, unless a dry
// run), and those refused.
type Result struct {
	Replayed []Letter
	Refused  []Refusal
}

// Replay puts the letters req selects back on their original topics and
// partitions, with their markers and audit records, in one transaction.
// An id that names no letter is ErrNotFound and nothing is written; a
// letter already replayed (unless req.Again) or from ingest is refused,
// the others are replayed. An empty selection is ErrNoSelection, so that
// everything is never replayed by accident; no reason is ErrNoReason.
func Replay(ctx context.Context, opts []kgo.Opt, serde *avro.Serde, req Request) (Result, error) {
	if req.Filter.empty() {
		return Result{}, ErrNoSelection
	}
	if !req.DryRun && strings.TrimSpace(req.Reason) == "" {
		return Result{}, ErrNoReason
	}
	for _, id := range req.Filter.IDs {
		if _, err := parseID(id); err != nil {
			return Result{}, err
		}
	}
	if req.At.IsZero() {
		req.At = time.Now()
	}
	var cl *kgo.Client
	if !req.DryRun {
		// The producer id is taken before the markers are read: a second
		// replay starting now fences this one (whose commit then fails),
		// and one starting after this commits reads its markers.
		var err error
		cl, err = kgo.NewClient(append(append([]kgo.Opt{}, opts...),
			kgo.TransactionalID(TransactionalID), kgo.RecordPartitioner(partitioner{}))...)
		if err != nil {
			return Result{}, fmt.Errorf("replay: %w", err)
		}
		defer cl.Close()
		if _, _, err := cl.ProducerID(ctx); err != nil {
			return Result{}, fmt.Errorf("replay: transactional producer %s: %w", TransactionalID, err)
		}
	}
	all := req.Filter
	all.NotReplayed = false // an id must name a letter even if it is left out
	letters, haveMarkers, err := read(ctx, opts, serde, all)
	if err != nil {
		return Result{}, err
	}
	for _, id := range req.Filter.IDs {
		if !hasID(letters, id) {
			return Result{}, fmt.Errorf("dead letter %s: %w (careflow dlq list shows them)", id, ErrNotFound)
		}
	}
	var res Result
	for _, l := range letters {
		if req.Filter.NotReplayed && len(l.Replays) > 0 {
			continue
		}
		if err := l.replayable(req.Again); err != nil {
			res.Refused = append(res.Refused, Refusal{Letter: l, Err: err})
		} else {
			res.Replayed = append(res.Replayed, l)
		}
	}
	// In the order the originals had: a patient's records stay in order
	// on their partition.
	slices.SortStableFunc(res.Replayed, func(a, b Letter) int {
		return cmp.Or(strings.Compare(a.OriginalTopic, b.OriginalTopic), cmp.Compare(a.OriginalPartition, b.OriginalPartition),
			cmp.Compare(a.OriginalOffset, b.OriginalOffset))
	})
	if req.DryRun || len(res.Replayed) == 0 {
		return res, nil
	}
	if !haveMarkers {
		return Result{}, fmt.Errorf("replay: topic %s does not exist: start this version of careflow once, and it creates it", topics.Replays)
	}
	if err := write(ctx, cl, serde, req, res.Replayed); err != nil {
		return Result{}, err
	}
	return res, nil
}

func hasID(ls []Letter, id string) bool {
	for _, l := range ls {
		if l.ID == id {
			return true
		}
	}
	return false
}

// write puts letters back in one transaction, and appends each one's
// Mark to it.
func write(ctx context.Context, cl *kgo.Client, serde *avro.Serde, req Request, letters []Letter) error {
	originals := make([]*kgo.Record, len(letters))
	for i, l := range letters {
		originals[i] = original(l)
	}
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("replay: begin transaction: %w", err)
	}
	abort := func(err error) error {
		_ = cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
		return err
	}
	// The originals first, so that each marker can say where its copy
	// landed; nothing is visible before the commit.
	if err := cl.ProduceSync(ctx, originals...).FirstErr(); err != nil {
		return abort(fmt.Errorf("replay: write the original records%s: %w", fenced(err), err))
	}
	var recs []*kgo.Record
	for i := range letters {
		l, o := &letters[i], originals[i]
		r := Mark{At: req.At.UTC(), By: req.By, Reason: req.Reason, Again: len(l.Replays) > 0,
			Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
		l.Replays = append(l.Replays, r)
		marker, err := json.Marshal(l.Replays)
		if err != nil {
			return abort(fmt.Errorf("replay %s: marker: %w", l.ID, err))
		}
		ev := avro.AuditEvent{
			AuditID: identity.NewMessageID(), Recorded: r.At, Type: audit.TypeDeadLetterReplayed,
			Action: avro.AuditExecute, Outcome: avro.AuditSuccess, OutcomeDesc: req.Reason,
			AgentType: audit.AgentUser, AgentWho: req.By, AgentNetwork: req.Network, SourceObserver: req.Observer,
			EntityType: audit.EntityDeadLetter, EntityWhat: l.ID,
			EntityDetail: fmt.Sprintf("%s partition %d offset %d", l.OriginalTopic, l.OriginalPartition, l.OriginalOffset),
			Count:        1,
		}
		av, err := serde.Encode(&ev)
		if err != nil {
			return abort(fmt.Errorf("replay %s: encode audit record: %w", l.ID, err))
		}
		recs = append(recs, &kgo.Record{Topic: topics.Replays, Key: []byte(l.ID), Value: marker},
			&kgo.Record{Topic: topics.Audit, Key: []byte(l.ID), Value: av})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return abort(fmt.Errorf("replay: write markers and audit records%s: %w", fenced(err), err))
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		why := " (whether it committed is unknown: list the letters to see whether they were replayed before retrying)"
		if isFenced(err) {
			why = fenced(err)
		}
		return fmt.Errorf("replay: commit%s: %w", why, err)
	}
	return nil
}

// fenced says what a person needs to know when another replay took the
// transactional id meanwhile: nothing of this one is visible, and listing
// again shows what the other did.
func fenced(err error) string {
	if isFenced(err) {
		return " (another replay started meanwhile and fenced this one: nothing was replayed; list the letters again and retry)"
	}
	return " (the transaction is aborted: nothing was replayed)"
}

// original is l's original record as it was: topic, partition, key, value
// and headers, with the letter's id in careflow.replay_of (instead of an
// earlier letter's, when the original was itself a replay).
func original(l Letter) *kgo.Record {
	dl := l.Record
	r := &kgo.Record{Topic: dl.OriginalTopic, Partition: dl.OriginalPartition, Key: dl.OriginalKey, Value: dl.OriginalValue}
	for _, h := range dl.OriginalHeaders {
		if h.Key != topics.HeaderReplayOf {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: topics.HeaderReplayOf, Value: []byte(l.ID)})
	return r
}

// partitioner puts a replayed record on the partition it names (its
// original one: a key's order is per partition, and the key alone might
// pick another), and a marker or audit record by its key, so that a
// letter's markers all land on one partition of the compacted topic.
type partitioner struct{}

func (partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == topics.Replays || topic == topics.Audit {
		return kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	}
	return kgo.ManualPartitioner().ForTopic(topic)
}

func isFenced(err error) bool {
	return errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerIDMapping)
}
