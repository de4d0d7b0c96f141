package load

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// LoadCorpus reads every *.hl7 file in dir (in name order) and returns the
// messages they hold. A file may hold several messages, each starting at a
// line beginning with "MSH"; line endings become CR. Files without an MSH
// segment (deliberately bad examples) are skipped.
func LoadCorpus(dir string) ([][]byte, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.hl7"))
	if err != nil {
		return nil, fmt.Errorf("load corpus %s: %w", dir, err)
	}
	slices.Sort(paths)
	var msgs [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load corpus: %w", err)
		}
		msgs = append(msgs, SplitMessages(data)...)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("load corpus %s: no *.hl7 file with an MSH segment", dir)
	}
	return msgs, nil
}

// SplitMessages splits data into HL7 messages, each starting at a line that
// begins with "MSH", with CR segment terminators. Lines before the first
// MSH are dropped.
func SplitMessages(data []byte) [][]byte {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\r"))
	data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r"))
	var msgs [][]byte
	var cur []byte
	for _, line := range bytes.Split(data, []byte("\r")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if bytes.HasPrefix(line, []byte("MSH")) {
			if len(cur) > 0 {
				msgs = append(msgs, cur)
			}
			cur = []byte{}
		}
		if cur == nil {
			continue // no MSH yet
		}
		cur = append(append(cur, line...), '\r')
	}
	if len(cur) > 0 {
		msgs = append(msgs, cur)
	}
	return msgs
}
