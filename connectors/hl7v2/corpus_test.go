package hl7v2

import (
	"bufio"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const corpusDir = "testdata/corpus"

// corpusCase is one line of testdata/corpus/EXPECT.
type corpusCase struct {
	file   string
	ok     bool
	code   string            // error code when !ok
	kind   string            // "ADT^A01" when ok
	fields map[string]string // key=value tokens, decoded
}

func readExpect(t testing.TB) []corpusCase {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "EXPECT"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		tok := strings.Fields(text)
		if len(tok) < 3 || (tok[1] != "ok" && tok[1] != "error") {
			t.Fatalf("EXPECT line %d: want <file> ok|error <type|code> ...", line)
		}
		c := corpusCase{file: tok[0], ok: tok[1] == "ok", fields: map[string]string{}}
		if c.ok {
			c.kind = tok[2]
		} else {
			c.code = tok[2]
		}
		for _, kv := range tok[3:] {
			k, v, found := strings.Cut(kv, "=")
			if !found {
				t.Fatalf("EXPECT line %d: token %q is not key=value", line, kv)
			}
			if k != "note" {
				if v, err = url.PathUnescape(v); err != nil {
					t.Fatalf("EXPECT line %d: %v", line, err)
				}
			}
			c.fields[k] = v
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// corpusFiles lists every message file under the corpus, relative to it.
func corpusFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(corpusDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "EXPECT" {
			return err
		}
		rel, _ := filepath.Rel(corpusDir, p)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestCorpus(t *testing.T) {
	cases := readExpect(t)
	listed := map[string]bool{}
	for _, c := range cases {
		listed[c.file] = true
	}
	files := corpusFiles(t)
	for _, f := range files {
		if !listed[f] {
			t.Errorf("%s has no line in EXPECT", f)
		}
	}
	if len(files) < 40 {
		t.Errorf("corpus has %d files, want at least 40", len(files))
	}
	versions := map[string]bool{}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data)
			if !c.ok {
				checkCorpusError(t, c, data, err)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			h := m.Header()
			versions[h.Version] = true
			if got := h.MessageType + "^" + h.TriggerEvent; got != c.kind {
				t.Errorf("type = %s, want %s", got, c.kind)
			}
			for k, want := range c.fields {
				var got string
				switch k {
				case "note":
					continue
				case "version":
					got = h.Version
				case "segments":
					got = strconv.Itoa(m.NumSegments())
				case "ack":
					ack, err := ParseACK(data)
					if err != nil {
						t.Fatalf("ParseACK: %v", err)
					}
					got = string(ack.Code)
				default:
					got = m.Get(k)
				}
				if got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			// Every parsed header can be rebuilt and parsed again.
			b := NewBuilder(m.Delimiters())
			b.MSH(h)
			again, err := Parse(b.Bytes())
			if err != nil {
				t.Fatalf("rebuilt MSH does not parse: %v", err)
			}
			if again.Header() != h && h.TriggerEvent == m.Get("MSH-9.2") {
				t.Errorf("rebuilt header differs:\n%+v\n%+v", again.Header(), h)
			}
		})
	}
	for _, v := range []string{"2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8"} {
		if !versions[v] {
			t.Errorf("corpus has no parseable message of version %s", v)
		}
	}
}

func checkCorpusError(t *testing.T, c corpusCase, data []byte, err error) {
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Code != c.code {
		t.Fatalf("Parse error = %v, want %s", err, c.code)
	}
	if n, ok := c.fields["messages"]; ok {
		msgs, err := SplitBatch(data)
		if err != nil {
			t.Fatalf("SplitBatch: %v", err)
		}
		if strconv.Itoa(len(msgs)) != n {
			t.Errorf("SplitBatch gave %d messages, want %s", len(msgs), n)
		}
		for i, msg := range msgs {
			if _, err := Parse(msg); err != nil {
				t.Errorf("batch message %d: %v", i+1, err)
			}
		}
	}
	if want, ok := c.fields["peek_control"]; ok {
		if h, _ := PeekHeader(data); h.ControlID != want {
			t.Errorf("PeekHeader control id = %q, want %q", h.ControlID, want)
		}
	}
}
