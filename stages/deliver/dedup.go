package deliver

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/topics"
)

// DeliveredKey is the key deliver remembers for destination: the event id
// of every outcome on careflow.outcomes that says the event was delivered
// there. Other destinations' outcomes, and attempts that did not end in
// delivery, are skipped: an event that was refused or is still retrying
// must be sent again.
func DeliveredKey(destination string) stages.KeyFunc {
	return func(r *kgo.Record) (string, bool) {
		var dest, status, id string
		for _, h := range r.Headers {
			switch h.Key {
			case topics.HeaderDestination:
				dest = string(h.Value)
			case topics.HeaderOutcomeStatus:
				status = string(h.Value)
			case topics.HeaderMessageID:
				id = string(h.Value)
			}
		}
		return id, dest == destination && status == avro.StatusDelivered && id != ""
	}
}

// RebuildDedup fills d, for newly assigned partitions of destination's
// outbound topic, with the events already delivered there, read from
// careflow.outcomes' same partitions (outcomes are keyed like the events).
func RebuildDedup(ctx context.Context, d *stages.Dedup, kafka []kgo.Opt, destination string, partitions []int32) error {
	return d.Load(ctx, kafka, topics.Outcomes, partitions, DeliveredKey(destination))
}
