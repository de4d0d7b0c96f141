package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/mllp"
)

// BenchmarkIngestMLLP measures messages per second through MLLP, parse,
// Avro encode and an acks=all write to the in-process broker, with each
// connection awaiting its ACK before the next message as HL7 senders do.
func BenchmarkIngestMLLP(b *testing.B) {
	msg := []byte("MSH|^~\\&|EPIC|NWH|CAREFLOW|NWH|20240301120000||ADT^A01^ADT_A01|MSG1|P|2.5.1\r" +
		"EVN|A01|20240301120000\rPID|1||12345^^^NWH^MR||TEST^PATIENT||19700101|F\rPV1|1|I|WARD1^101^A\r")
	for _, conns := range []int{1, 8} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			h := newHarness(b)
			clients := make([]*mllp.Client, conns)
			for i := range clients {
				clients[i] = h.mllpClient(b, "ehr")
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			start := time.Now()
			var next sync.Mutex
			remaining := b.N
			var wg sync.WaitGroup
			for _, c := range clients {
				wg.Go(func() {
					for {
						next.Lock()
						if remaining == 0 {
							next.Unlock()
							return
						}
						remaining--
						next.Unlock()
						if _, err := c.Send(context.Background(), msg); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
