package load

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// LoadCorpus reads every *.hl7 file in dir (in name order) and returns the
// messages they hold, read as `careflow send` reads them (hl7v2.SplitFile).
// Files without any MSH segment (deliberately bad examples) are skipped;
// any other unreadable file is an error naming it.
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
		got, err := hl7v2.SplitFile(data)
		var pe *hl7v2.ParseError
		if errors.As(err, &pe) && (pe.Code == hl7v2.CodeNoMSH || pe.Code == hl7v2.CodeEmpty) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load corpus %s: %w", p, err)
		}
		msgs = append(msgs, got...)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("load corpus %s: no *.hl7 file with an MSH segment", dir)
	}
	return msgs, nil
}
