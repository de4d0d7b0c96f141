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
