package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/internal/console"
)

const usersUsage = `users add --file FILE --name NAME --role viewer|operator|admin   (the password is read from stdin)
users list --file FILE`

// cmdUsers manages the console's users file.
func cmdUsers(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "add" && args[0] != "list") {
		return usageError{usersUsage}
	}
	fs := flag.NewFlagSet("users "+args[0], flag.ContinueOnError)
	file := fs.String("file", "", "the users `FILE` (console.users_file)")
	name := fs.String("name", "", "add: the user's login name")
	role := fs.String("role", config.RoleViewer, "add: viewer, operator or admin")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return usageError{"--file FILE is required\n" + usersUsage}
	}
	if args[0] == "list" {
		u, err := console.LoadUsers(*file)
		if err != nil {
			return err
		}
		for _, x := range u.List() {
			fmt.Fprintf(stdout, "%s\t%s\n", x.Name, x.Role)
		}
		return nil
	}
	if *name == "" {
		return usageError{"--name NAME is required\n" + usersUsage}
	}
	// The password comes on stdin, never as an argument: arguments are
	// visible to every user of the machine (ps) and kept in shell history.
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the password from stdin: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if err := console.SetUser(*file, *name, *role, password); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s (%s) is in %s\n", *name, *role, *file)
	return nil
}

// demoConsoleUsers makes the demo's console users file in dir when the
// configuration names none: an admin, an operator and a viewer, each with
// a random password printed once. No password is published or kept.
func demoConsoleUsers(cfg *config.Config, dir string, stdout io.Writer) error {
	if cfg.Console.UsersFile != "" {
		return nil
	}
	if dir == "" {
		dir = "."
	}
	path := filepath.Join(dir, "console-users")
	cfg.Console.UsersFile = path
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintf(stdout, "console: users from %s (delete it for new demo passwords)\n", path)
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var shown []string
	for _, r := range []string{config.RoleAdmin, config.RoleOperator, config.RoleViewer} {
		var b [12]byte
		_, _ = rand.Read(b[:])
		pw := base64.RawURLEncoding.EncodeToString(b[:])
		if err := console.SetUser(path, r, r, pw); err != nil {
			return err
		}
		shown = append(shown, r+" / "+pw)
	}
	fmt.Fprintf(stdout, "console: demo users written to %s; passwords, shown only now:\n  %s\n", path, strings.Join(shown, "\n  "))
	return nil
}
