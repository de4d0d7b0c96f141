package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
)

// cmdToken makes a bearer token for an HTTP writer or the admin port. The
// token is printed once, for the writer to keep; the configuration holds
// only its SHA-256, so the careflow host never stores the token.
func cmdToken(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		return usageError{"token new [--name NAME]: make a bearer token and the sha256 line for the configuration"}
	}
	fs := flag.NewFlagSet("token new", flag.ContinueOnError)
	name := fs.String("name", "writer", "who the token is for (recorded in audit records and on every message it sends)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	token := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	fmt.Fprintf(stdout, "token:  %s\n", token)
	fmt.Fprintf(stdout, "sha256: %s\n\n", hex.EncodeToString(sum[:]))
	fmt.Fprintf(stdout, "Give the token to %s (it is shown only now), and put this in the interface's writers.tokens (or admin.tokens):\n", *name)
	fmt.Fprintf(stdout, "  - {name: %s, sha256: %s}\n", *name, hex.EncodeToString(sum[:]))
	return nil
}
