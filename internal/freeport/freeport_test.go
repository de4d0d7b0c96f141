package freeport

import (
	"net"
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

func TestDistinctNeverRepeats(t *testing.T) {
	next := Distinct(t)
	seen := map[string]bool{}
	for range 50 {
		a := next()
		if seen[a] {
			t.Fatalf("Distinct gave %s twice", a)
		}
		seen[a] = true
	}
}
