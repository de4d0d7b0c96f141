// This file holds what the package's fuzz targets start from: the
// real-world messages of testdata/corpus and examples/messages.

package hl7v2

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// examplesDir holds the demo's synthetic messages, written with LF line
// ends as an operator would edit them.
const examplesDir = "../../examples/messages"

// messageSeeds returns every corpus message and every example message, the
// examples both as written (LF) and with CR terminators, as `careflow
// send` sends them.
func messageSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, file := range corpusFiles(tb) {
		data, err := os.ReadFile(filepath.Join(corpusDir, file))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, data)
	}
	examples, err := filepath.Glob(filepath.Join(examplesDir, "*.hl7"))
	if err != nil || len(examples) == 0 {
		tb.Fatalf("no example messages in %s: %v", examplesDir, err)
	}
	for _, file := range examples {
		data, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, data, bytes.ReplaceAll(data, []byte("\n"), []byte("\r")))
	}
	return out
}
