package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// errPortTaken says the demo's admin port is in use: most often a
// `make run` still running, whose ports the shots' demo needs too.
var errPortTaken = errors.New("in use (a `make run` still running? make screenshots needs the demo's ports free)")

// portFree fails when something already listens on addr.
func portFree(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("the admin port %s is %w", addr, errPortTaken)
}

// child is careflow run as a process of its own. Its group is its own, so
// stop reaches whatever it starts, and a Ctrl-C on the terminal reaches
// the shots first, which then stop it in order.
type child struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process is waited for
	err     error         // how it exited; read after exited is closed
}

// startEngine runs `bin run --config cfg --data data --demo`, its output
// in data/careflow.log (the demo prints no passwords: the users file is
// the shots' own).
func startEngine(ctx context.Context, bin, cfg, data string) (*child, error) {
	return startChild(ctx, filepath.Join(data, "careflow.log"), bin, "run", "--config", cfg, "--data", data, "--demo")
}

func startChild(ctx context.Context, logPath, name string, args ...string) (*child, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	// The waiter is owned by the child: stop waits for it.
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// waitReady polls url until it answers 200, the process exits, ctx ends
// or timeout passes.
func (c *child) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-c.exited:
			return c.exitError()
		case <-deadline.C:
			return fmt.Errorf("careflow not ready at %s after %s; its log:\n%s", url, timeout, c.logTail())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// exitError says why the process ended before the shots were done.
func (c *child) exitError() error {
	return fmt.Errorf("careflow exited early (%v); its log:\n%s", c.err, c.logTail())
}

// stop ends the process group: SIGTERM, so careflow shuts down in order,
// then SIGKILL after 20 seconds. It returns once the process is waited for.
func (c *child) stop() error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.exited
		return fmt.Errorf("careflow did not stop within 20s of SIGTERM; killed")
	}
	// The group may outlive its leader; nothing of it should.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// logTail is the end of the process's log, for an error.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}
