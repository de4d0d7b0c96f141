package freeport

import (
	"net"
	"sync"
	"testing"
)

func TestAddrCanBeBound(t *testing.T) {
	addr := For(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ln.Close()
	p, err := Port()
	if err != nil || p <= 0 || p > 65535 {
		t.Fatalf("Port() = %d, %v", p, err)
	}
}

func TestForNeverRepeats(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				a := For(t)
				mu.Lock()
				if seen[a] {
					t.Errorf("For gave %s twice", a)
				}
				seen[a] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
