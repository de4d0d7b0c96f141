package analytics_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/analytics/chtest"
)

// BenchmarkInsert measures the sink's insert rate into a real ClickHouse:
// rows/s for batches of 1k and 10k transitions, the table every record
// feeds. Run: go test -run '^$' -bench Insert -benchtime 20x ./analytics
func BenchmarkInsert(b *testing.B) {
	ch := chtest.Start(b)
	st, err := analytics.Open(context.Background(), ch.DSN("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for _, size := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("rows=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			var batch analytics.Batch
			at := time.Now().UTC()
			for i := range size {
				id := "m-" + strconv.Itoa(i)
				batch.Transitions = append(batch.Transitions, analytics.Transition{
					RowID: id + "/deliver/lab/delivered", MessageID: id, CorrelationID: id, Interface: "ehr",
					Destination: "lab", MessageType: "ORU", TriggerEvent: "R01",
					PatientHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
					Stage:       "deliver", Status: "delivered", IngestTime: at, StageTime: at.Add(time.Duration(i) * time.Millisecond),
				})
			}
			b.ResetTimer()
			for range b.N {
				if err := st.Insert(context.Background(), &batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
