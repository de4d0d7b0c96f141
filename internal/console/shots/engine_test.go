package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/console"
)

func TestPortFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := portFree(addr); !errors.Is(err, errPortTaken) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("portFree(%s) while listening = %v, want errPortTaken naming the address", addr, err)
	}
	l.Close()
	if err := portFree(addr); err != nil {
		t.Fatalf("portFree(%s) after close = %v", addr, err)
	}
}

// gone reports whether pid has ended (or is a zombie waiting to be reaped).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// TestStopEndsTheGroup: what careflow starts (here a grandchild sleep)
// ends with it, so a run leaves nothing on the demo's ports.
func TestStopEndsTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	c, err := startChild(t.Context(), filepath.Join(dir, "log"), "sh", "-c", "sleep 300 & echo $! >"+pidFile+"; wait")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(5 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the child never wrote its grandchild's pid")
		}
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
	default:
		t.Fatal("stop returned before the child was waited for")
	}
	for deadline := time.Now().Add(5 * time.Second); !gone(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d outlived stop", pid)
		}
	}
	if err := c.stop(); err != nil {
		t.Fatalf("a second stop = %v, want nil", err)
	}
}

func TestWaitReady(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	defer notReady.Close()
	for _, tc := range []struct {
		name, script, url string
		want              string // in the error; "" for none
	}{
		{"ready", "sleep 300", ready.URL, ""},
		{"exits first", "echo broker port taken; exit 3", notReady.URL, "careflow exited early (exit status 3); its log:\nbroker port taken"},
		{"never ready", "sleep 300", notReady.URL, "careflow not ready at " + notReady.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := startChild(t.Context(), filepath.Join(t.TempDir(), "log"), "sh", "-c", tc.script)
			if err != nil {
				t.Fatal(err)
			}
			defer c.stop()
			err = c.waitReady(t.Context(), tc.url, 2*time.Second)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("waitReady = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestStartChildCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := startChild(ctx, filepath.Join(t.TempDir(), "log"), "sleep", "300"); !errors.Is(err, context.Canceled) {
		t.Fatalf("startChild on a cancelled context = %v", err)
	}
}

// TestWriteAdmin: the users file the demo will find holds an admin whose
// password is the one returned, and only it.
func TestWriteAdmin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	pw, err := writeAdmin(dir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := console.LoadUsers(filepath.Join(dir, "console-users"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := u.Check(adminUser, pw)
	if err != nil || got.Role != config.RoleAdmin {
		t.Fatalf("Check(admin, password) = %+v, %v; want the admin role", got, err)
	}
	if _, err := u.Check(adminUser, pw+"x"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if l := u.List(); len(l) != 1 {
		t.Fatalf("users = %+v, want only the admin", l)
	}
}
