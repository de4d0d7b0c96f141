package logbuf

import (
	"fmt"
	"sync"
	"testing"
)

func TestConcurrentWritesAllArrive(t *testing.T) {
	var b Buffer
	if got := b.Lines(); len(got) != 0 {
		t.Fatalf("empty buffer has lines %q", got)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				fmt.Fprintf(&b, "writer %d line %d\n", i, j)
				_ = b.Lines() // a reader racing the writers
			}
		}()
	}
	wg.Wait()
	if n := len(b.Lines()); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
}
