// Package freeport finds a TCP address on the loopback interface that
// nothing listens on, for tests and the benchmark estate, which start
// listeners of their own and must not collide with a running careflow.
package freeport

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

// handed holds every address Addr has returned in this process: the kernel
// may hand a just-released port to the next caller too, and an estate of
// listeners started together must not get one twice.
var handed sync.Map

// Addr returns "127.0.0.1:PORT" for a port the kernel just handed out and
// released, never the same one twice in a process. Another process can
// take it before the caller binds it; on a test machine that is rare
// enough to accept. Safe for concurrent use.
func Addr() (string, error) {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("find a free port: %w", err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, seen := handed.LoadOrStore(addr, true); !seen {
			return addr, nil
		}
	}
}

// Port is Addr's port number.
func Port() (int, error) {
	addr, err := Addr()
	if err != nil {
		return 0, err
	}
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return 0, err
	}
	return a.Port, nil
}

// For is Addr that fails t instead of returning an error.
func For(t testing.TB) string {
	t.Helper()
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// PortFor is Port that fails t instead of returning an error.
func PortFor(t testing.TB) int {
	t.Helper()
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
