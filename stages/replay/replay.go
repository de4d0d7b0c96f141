// Package replay puts dead letters back where they came from, once: the
// record a stage dead-lettered on careflow.dlq.<stage> goes back onto its
// original topic and partition, key, value and headers byte for byte, with
// the letter's id in careflow.replay_of, and the stage that failed it
// processes it again once its cause is fixed.
//
// Exactly once, as the review queue decides: every replay is marked on the
// compacted topic careflow.replays, keyed by the letter's id, in the one
// Kafka transaction that writes the replayed records and their audit
// records (careflow.audit), so a letter cannot be replayed without its
// marker or marked without being replayed. One transactional id serves
// every replay and the producer id is taken before the markers are read:
// two operators replaying at once fence each other (the first one's commit
// fails), or the second reads the first's markers and is refused. A
// letter already replayed is replayed again only when asked (Again); a
// message that was delivered is then suppressed by deliver's dedup.
//
// Ingest's dead letters are not replayable: ingest refused the message at
// the door and answered the sender AR/CR, so careflow never stored it and
// the sender must correct it and send it again.
package replay

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/topics"
)

// Errors callers branch on.
var (
	ErrNotFound      = errors.New("no dead letter has this id")
	ErrNoReason      = errors.New("a replay needs a reason")
	ErrReplayed      = errors.New("the dead letter was already replayed")
	ErrNotReplayable = errors.New("the dead letter cannot be replayed")
	ErrNoSelection   = errors.New("no dead letters selected: name them by id or give a filter")
)

// Letter is one dead letter and what was done with it. Its ID is
// "<stage>:<partition>:<offset>" of the dead-letter record on
// careflow.dlq.<stage>: stable, short, and what the CLI takes.
type Letter struct {
	ID string
	// Why: Text is careflow's words; the destination's own words are in
	// Record.ErrorDetail.
	Stage, Code, Location, Text string
	// Destination is the destination of the original topic when it is
	// careflow.out.X (topics.DestinationOf), else "".
	Interface, Destination   string
	MessageID, CorrelationID string
	At                       time.Time
	OriginalTopic            string
	OriginalPartition        int32
	OriginalOffset           int64
	// Record is everything, the original value among it: patient data,
	// so callers decide who sees it.
	Record *avro.DeadLetter
	// Replays are the earlier replays of this letter, oldest first.
	Replays []Mark

	// unreadable is why the record on the dead-letter topic is not a
	// DeadLetter (its encoding failed when it was written): the letter
	// is listed from its headers and cannot be replayed.
	unreadable error
}

// Mark is one replay of a letter, as careflow.replays records it. (Not
// "Replay": that is the function doing it, and Go has one name for both.)
type Mark struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Again  bool      `json:"again,omitempty"`
	// Topic, Partition and Offset are where the replayed copy landed;
	// Offset is -1 if unknown.
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Filter selects letters; every field given must match. IDs name letters
// outright; Since is inclusive and Until exclusive, on the letter's time;
// NotReplayed leaves out letters already replayed.
type Filter struct {
	IDs                                 []string
	Stage, Code, Interface, Destination string
	Since, Until                        time.Time
	NotReplayed                         bool
}

// empty reports whether f selects nothing in particular: replaying it
// would replay everything.
func (f Filter) empty() bool {
	return len(f.IDs) == 0 && f.Stage == "" && f.Code == "" && f.Interface == "" && f.Destination == "" &&
		f.Since.IsZero() && f.Until.IsZero()
}

func (f Filter) match(l *Letter) bool {
	switch {
	case len(f.IDs) > 0 && !slices.Contains(f.IDs, l.ID),
		f.Stage != "" && l.Stage != f.Stage,
		f.Code != "" && l.Code != f.Code,
		f.Interface != "" && l.Interface != f.Interface,
		f.Destination != "" && l.Destination != f.Destination,
		!f.Since.IsZero() && l.At.Before(f.Since),
		!f.Until.IsZero() && !l.At.Before(f.Until),
		f.NotReplayed && len(l.Replays) > 0:
		return false
	}
	return true
}

// stages are the stages whose dead-letter topics f can select from: the
// one named, those its ids name, else every stage's.
func (f Filter) stages() []string {
	if f.Stage != "" {
		return []string{f.Stage}
	}
	if len(f.IDs) == 0 {
		return topics.Stages
	}
	var out []string
	for _, id := range f.IDs {
		if p, err := parseID(id); err == nil && !slices.Contains(out, p.stage) {
			out = append(out, p.stage)
		}
	}
	return out
}

// ID is the id of the dead-letter record at partition/offset on stage's
// dead-letter topic.
func ID(stage string, partition int32, offset int64) string {
	return stage + ":" + strconv.Itoa(int(partition)) + ":" + strconv.FormatInt(offset, 10)
}

type place struct {
	stage     string
	partition int32
	offset    int64
}

func parseID(id string) (place, error) {
	f := strings.Split(id, ":")
	if len(f) != 3 || !slices.Contains(topics.Stages, f[0]) {
		return place{}, fmt.Errorf("dead letter %q: not an id (stage:partition:offset, stage one of %s): %w",
			id, strings.Join(topics.Stages, ", "), ErrNotFound)
	}
	p, perr := strconv.ParseInt(f[1], 10, 32)
	o, oerr := strconv.ParseInt(f[2], 10, 64)
	if perr != nil || oerr != nil || p < 0 || o < 0 {
		return place{}, fmt.Errorf("dead letter %q: not an id (stage:partition:offset): %w", id, ErrNotFound)
	}
	return place{f[0], int32(p), o}, nil
}

// replayable is nil when l can be put back, else why not (wrapping
// ErrReplayed or ErrNotReplayable).
func (l *Letter) replayable(again bool) error {
	switch {
	case l.unreadable != nil:
		return fmt.Errorf("dead letter %s: %w: its record is not a readable DeadLetter (%v)", l.ID, ErrNotReplayable, l.unreadable)
	case l.Stage == topics.StageIngest || l.OriginalTopic == "":
		return fmt.Errorf("dead letter %s: %w: ingest refused the message at the door and answered the sender AR/CR, "+
			"so it never reached a topic; the sender must correct it and send it again", l.ID, ErrNotReplayable)
	case len(l.Replays) > 0 && !again:
		last := l.Replays[len(l.Replays)-1]
		return fmt.Errorf("dead letter %s: %w at %s by %s (%s); to replay it once more, ask again (careflow dlq replay --again)",
			l.ID, ErrReplayed, last.At.UTC().Format(time.RFC3339), last.By, last.Reason)
	}
	return nil
}
