// Package freeport finds a TCP address on the loopback interface that
// nothing listens on, for tests and the benchmark estate, which start
// listeners of their own and must not collide with a running careflow.
package freeport

import (
	"fmt"
	"net"
	"testing"
)

// Addr returns "127.0.0.1:PORT" for a port the kernel just handed out and
// released. Another process can take it before the caller binds it; on a
// test machine that is rare enough to accept.
func Addr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
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

// Distinct returns a function that gives a different free address on
// every call, for an estate of listeners started together: the kernel may
// hand the same just-released port to two calls of For.
func Distinct(t testing.TB) func() string {
	used := map[string]bool{}
	return func() string {
		t.Helper()
		for {
			if a := For(t); !used[a] {
				used[a] = true
				return a
			}
		}
	}
}
