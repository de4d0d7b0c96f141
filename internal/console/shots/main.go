// Command shots takes the screenshots of the operators' console that
// docs/console.md shows (make screenshots): it runs `careflow run --demo`
// on a fresh data directory, lets the simulated hospital send for a while,
// logs in with headless Chromium and writes a full-page PNG of every page.
//
//	go run ./internal/console/shots --careflow bin/careflow \
//	    --config DATA/careflow-demo.yaml --data DATA --out docs/console
//
// It needs the demo's ports free: it is the demo, run once more.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/browser"
	"github.com/careflow-health/careflow/internal/console"
)

// adminUser is the console user the shots log in as: an admin, so the
// users and audit pages are open to it.
const adminUser = "admin"

type options struct {
	careflow string
	config   string
	data     string
	out      string
	settle   time.Duration
	width    int64
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "shots:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shots", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.careflow, "careflow", "bin/careflow", "the careflow `BIN` to run")
	fs.StringVar(&o.config, "config", "", "the demo configuration `FILE` (with ClickHouse: deploy/clickhouse/demo.sh start prints it)")
	fs.StringVar(&o.data, "data", "", "a fresh data `DIR` for the demo")
	fs.StringVar(&o.out, "out", "docs/console", "where the PNGs go")
	fs.DurationVar(&o.settle, "settle", 60*time.Second, "how long the demo runs before the shots, so charts and dead letters have something")
	fs.Int64Var(&o.width, "width", 1400, "the browser's viewport width in pixels")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.config == "" || o.data == "" {
		return errors.New("--config FILE and --data DIR are required")
	}
	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	if cfg.Console.UsersFile != "" {
		// The shots log in with a password they make; a named users
		// file is someone's, not the demo's, and is left alone.
		return fmt.Errorf("%s names console.users_file (%s): shots needs the demo's own users file, so leave the key out", o.config, cfg.Console.UsersFile)
	}
	addr := cfg.Admin.Listen
	if cfg.Admin.TLS != nil {
		return fmt.Errorf("%s serves the admin port over TLS: shots expects the demo's plain HTTP", o.config)
	}
	if err := portFree(addr); err != nil {
		return err
	}
	chromium, err := browser.Path()
	if err != nil {
		return err
	}
	password, err := writeAdmin(o.data)
	if err != nil {
		return err
	}

	eng, err := startEngine(ctx, o.careflow, o.config, o.data)
	if err != nil {
		return err
	}
	defer func() {
		if err := eng.stop(); err != nil {
			fmt.Fprintln(stderr, "shots: stop careflow:", err)
		}
	}()
	base := "http://" + addr
	fmt.Fprintf(stderr, "shots: careflow starting (log: %s)\n", eng.logPath)
	if err := eng.waitReady(ctx, base+"/readyz", 2*time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "shots: careflow ready on %s; the demo runs %s before the shots\n", addr, o.settle)
	if cfg.HTTP.Enabled() {
		if err := sendInvalid(ctx, cfg.HTTP.Listen); err != nil {
			return err
		}
	}
	select {
	case <-time.After(o.settle):
	case <-eng.exited:
		return eng.exitError()
	case <-ctx.Done():
		return ctx.Err()
	}

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	written, err := shoot(ctx, chromium, shooter{base: base, user: adminUser, password: password, out: o.out, width: o.width, warn: stderr})
	for _, f := range written {
		fmt.Fprintln(stdout, f)
	}
	return err
}

// writeAdmin puts the admin user, with a random password kept only in
// memory, in DIR/console-users, where `careflow run --demo` looks and
// which it leaves alone when it exists.
func writeAdmin(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(b[:])
	if err := console.SetUser(filepath.Join(dir, "console-users"), adminUser, config.RoleAdmin, password); err != nil {
		return "", err
	}
	return password, nil
}
