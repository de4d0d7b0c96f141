// Package chtest starts a real clickhouse-server for tests: its own process
// on loopback, with its data in the test's temporary folder, so tests never
// mock ClickHouse and never touch a server someone else runs. When the
// server binary is missing the test is skipped, unless
// CAREFLOW_REQUIRE_PEERS is set (as .ci/run does), where it fails.
package chtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/internal/peer"
)

// Server is a clickhouse-server process owned by one test.
type Server struct {
	t       testing.TB
	dir     string
	tcpPort int
	cmd     []string // the binary and its leading arguments

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{}
}

// binary finds the server: clickhouse-server (Debian puts it in
// /usr/sbin), else the single "clickhouse" binary of current releases.
func binary() []string {
	for _, p := range []string{"clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return []string{path}
		}
	}
	if path, err := exec.LookPath("clickhouse"); err == nil {
		return []string{path, "server"}
	}
	return nil
}

// Start starts a server for t and stops it when t ends. It waits until the
// server answers.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary()
	if bin == nil {
		peer.Missing(t, "clickhouse-server is not installed (apt-get install -y clickhouse-server)")
	}
	s := &Server{t: t, dir: t.TempDir(), cmd: bin}
	t.Cleanup(s.Stop)
	// A port picked free may be taken by the time the server binds it
	// (other tests run in parallel): pick again, a few times.
	var err error
	for range 3 {
		s.tcpPort = freeport.PortFor(t)
		if err = writeConfig(s.dir, s.tcpPort, freeport.PortFor(t)); err != nil {
			t.Fatal(err)
		}
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatal(err)
	return nil
}

// Addr is the native protocol address, host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tcpPort)) }

// DSN is a clickhouse-go DSN for database db on this server.
func (s *Server) DSN(db string) string { return "clickhouse://" + s.Addr() + "/" + db }

// Start (re)starts the server process on the same ports and data, and
// waits until it answers. Tests call it after Stop to bring ClickHouse back.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	if s.proc != nil {
		s.mu.Unlock()
		return nil
	}
	args := append(append([]string{}, s.cmd[1:]...), "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd := exec.Command(s.cmd[0], args...)
	cmd.Dir = s.dir
	dieWithParent(cmd)
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return fmt.Errorf("start %v: %w", s.cmd, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	s.proc, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := s.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			s.Stop()
			return fmt.Errorf("clickhouse-server did not answer on %s within 60s: %v\n%s", s.Addr(), err, tail(log, 2000))
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			s.Stop()
			return fmt.Errorf("clickhouse-server exited at start:\n%s", tail(log, 2000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the server (SIGKILL: the harshest outage) and waits for it to
// exit. It is safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Process.Kill()
	<-s.done
	s.proc, s.done = nil, nil
}

func (s *Server) ping() error {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr()}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// writeConfig writes the smallest configuration both 18.16 and current
// releases accept: loopback only, one passwordless default user, the data
// under dir.
func writeConfig(dir string, tcpPort, httpPort int) error {
	cfg := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%d</tcp_port>
  <http_port>%d</http_port>
  <path>%s/data/</path>
  <tmp_path>%s/tmp/</tmp_path>
  <user_files_path>%s/user_files/</user_files_path>
  <format_schema_path>%s/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709120</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
`, tcpPort, httpPort, dir, dir, dir, dir)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644)
}
