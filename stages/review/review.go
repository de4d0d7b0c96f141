// Package review is careflow's review queue: messages a machine must not
// decide alone (identifiers that conflict with what careflow knows, a
// merge of a patient never seen, an unmerge, an update a source-of-truth
// rule sends to a person, a code a map says to hold), held on
// careflow.review until a person approves or rejects them.
//
// careflow.review is compacted by review id: an item is written pending by
// the stage that held it, with the held record itself, and written again
// with the decision. Approving writes, in one Kafka transaction, the
// decided item and the held record back onto the topic it came from,
// with its review id in a header, so the stage lets it through: the
// message continues exactly once, and a second decision on the same item
// is refused. Every decision names who made it and when, and the sink
// copies careflow.review into ClickHouse.
package review

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// Errors a decision returns; callers branch on them.
var (
	ErrNotFound = errors.New("no review item has this id")
	ErrDecided  = errors.New("the review item is already decided")
	ErrNoReason = errors.New("a rejection needs a reason")
)

// ID is the review id of the message with messageID held for code: the
// same message held again for the same reason (a restart, a replay) is
// the same item.
func ID(messageID, code string) string {
	sum := sha256.Sum256([]byte(messageID + "\x00" + code))
	return "R" + hex.EncodeToString(sum[:])[:11]
}

// Hold is the pending item for in, the record a stage holds. x describes
// it; Hold fills in the status, the id and the held record.
func Hold(x avro.Review, in stages.Envelope, now time.Time) avro.Review {
	x.ReviewID = ID(x.MessageID, x.Code)
	x.Status = avro.ReviewPending
	x.HeldAt = now.UTC()
	x.HeldTopic = in.Topic
	x.HeldKey = in.Key
	x.HeldValue = in.Value
	x.HeldHeaders = map[string]string{}
	for _, h := range in.Headers {
		if h.Key != topics.HeaderReviewID && h.Key != topics.HeaderReviewCode {
			x.HeldHeaders[h.Key] = string(h.Value)
		}
	}
	return x
}

// Record is r as the stage writes it on careflow.review.
func Record(serde *avro.Serde, r *avro.Review, h stages.Headers) (stages.Envelope, error) {
	b, err := serde.Encode(r)
	if err != nil {
		return stages.Envelope{}, stages.Transient(stages.CodeEncode, fmt.Errorf("review: encode item %s: %w", r.ReviewID, err))
	}
	return stages.Envelope{Topic: topics.Review, Key: []byte(r.ReviewID), Value: b, Headers: h.Clone()}, nil
}

// Queue is careflow.review as read: every item's latest state.
type Queue struct {
	Items map[string]*avro.Review
}

// Read reads careflow.review to its end.
func Read(ctx context.Context, opts []kgo.Opt, serde *avro.Serde) (*Queue, error) {
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("review: %w", err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics.Review)
	adm.Close()
	if err != nil {
		return nil, fmt.Errorf("review: list %s: %w", topics.Review, err)
	}
	var parts []int32
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			parts = append(parts, o.Partition)
		}
	})
	q := &Queue{Items: map[string]*avro.Review{}}
	var bad error
	err = stages.ReadToEndStrict(ctx, opts, topics.Review, parts, kgo.NewOffset().AtStart(), func(r *kgo.Record) {
		if r.Value == nil {
			delete(q.Items, string(r.Key))
			return
		}
		var x avro.Review
		if err := serde.DecodeContext(ctx, r.Value, &x); err != nil {
			bad = fmt.Errorf("review: %s partition %d offset %d: %w", topics.Review, r.Partition, r.Offset, err)
			return
		}
		q.Items[x.ReviewID] = &x
	})
	if err != nil {
		return nil, fmt.Errorf("review: read %s: %w", topics.Review, err)
	}
	return q, bad
}

// List is the items with status (every item when status is ""), oldest
// held first.
func (q *Queue) List(status string) []*avro.Review {
	var out []*avro.Review
	for _, x := range q.Items {
		if status == "" || x.Status == status {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].HeldAt.Equal(out[j].HeldAt) {
			return out[i].HeldAt.Before(out[j].HeldAt)
		}
		return out[i].ReviewID < out[j].ReviewID
	})
	return out
}

// Decision is a person's decision on one item.
type Decision struct {
	ID      string
	Approve bool
	By      string // who: the operating-system user for the CLI
	Reason  string // required to reject
	At      time.Time
}

// Decide records d and, for an approval, sends the held record on, in
// one transaction. It refuses an id that does not exist (ErrNotFound) or
// was already decided (ErrDecided), sending nothing.
func Decide(ctx context.Context, opts []kgo.Opt, serde *avro.Serde, d Decision) (*avro.Review, error) {
	if !d.Approve && strings.TrimSpace(d.Reason) == "" {
		return nil, ErrNoReason
	}
	// The transactional id is the item's, and the producer id is taken
	// before the item is read: a second operator deciding it at once
	// fences the first (whose commit then fails), or, starting after the
	// first committed, reads its decision and is refused.
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, opts...),
		kgo.TransactionalID("careflow-review-"+d.ID))...)
	if err != nil {
		return nil, fmt.Errorf("review %s: %w", d.ID, err)
	}
	defer cl.Close()
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return nil, fmt.Errorf("review %s: transactional producer: %w", d.ID, err)
	}
	q, err := Read(ctx, opts, serde)
	if err != nil {
		return nil, err
	}
	x, ok := q.Items[d.ID]
	if !ok {
		return nil, fmt.Errorf("review %s: %w", d.ID, ErrNotFound)
	}
	if x.Status != avro.ReviewPending {
		return x, fmt.Errorf("review %s: %w (%s by %s at %s)", d.ID, ErrDecided, x.Status, x.DecidedBy, x.DecidedAt.UTC().Format(time.RFC3339))
	}
	x.Status, x.DecidedBy, x.DecidedAt, x.DecisionReason = avro.ReviewRejected, d.By, d.At.UTC(), d.Reason
	if d.Approve {
		x.Status = avro.ReviewApproved
	}
	b, err := serde.Encode(x)
	if err != nil {
		return nil, fmt.Errorf("review %s: encode: %w", d.ID, err)
	}
	recs := []*kgo.Record{{Topic: topics.Review, Key: []byte(x.ReviewID), Value: b}}
	if d.Approve {
		held := &kgo.Record{Topic: x.HeldTopic, Key: x.HeldKey, Value: x.HeldValue}
		for k, v := range x.HeldHeaders {
			held.Headers = append(held.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		// The id, and the code approved: the stage lets the message
		// through that one hold only, and holds it again for any other.
		held.Headers = append(held.Headers, kgo.RecordHeader{Key: topics.HeaderReviewID, Value: []byte(x.ReviewID)},
			kgo.RecordHeader{Key: topics.HeaderReviewCode, Value: []byte(x.Code)})
		recs = append(recs, held)
	}
	// One transaction: the decision and the message it releases are
	// written together or not at all.
	if err := cl.BeginTransaction(); err != nil {
		return nil, fmt.Errorf("review %s: begin: %w", d.ID, err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
		return nil, fmt.Errorf("review %s: write: %w", d.ID, err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return nil, fmt.Errorf("review %s: commit: %w", d.ID, err)
	}
	return x, nil
}
