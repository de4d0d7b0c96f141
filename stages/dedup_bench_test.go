package stages

import (
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkDedupMemory reports the heap a committed key costs, with keys
// shaped like ingest's idempotency keys (application|facility|control id).
func BenchmarkDedupMemory(b *testing.B) {
	const keys = 200_000
	var before, after runtime.MemStats
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&before)
		d := NewDedup(0)
		for i := range keys {
			d.Add(int32(i%6), "LABSYS|GENERAL HOSPITAL|MSG"+strconv.Itoa(100000000+i))
			if i%500 == 499 {
				d.Commit()
			}
		}
		d.Commit()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if d.Size() != keys {
			b.Fatalf("Size() = %d, want %d", d.Size(), keys)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/keys, "B/key")
		runtime.KeepAlive(d)
	}
}
