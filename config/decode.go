// This file decodes a YAML node tree onto the Config types by their yaml
// tags. It is strict where yaml.v3's own decoder is lenient: an unknown or
// repeated key is a mistake, and every mistake is collected with the line of
// the key it concerns instead of stopping at the first.

package config

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

type decoder struct {
	file     string
	dir      string // relative paths in the file are relative to this
	opts     options
	problems Problems
	warnings Problems
	// pos holds where each key path was written, so that validation can
	// report a mistake at the line of the key it concerns.
	pos map[string]Pos
	// muted holds keys that failed to decode (see decodeFile).
	muted map[string]bool
}

func newDecoder(file, dir string, o options) *decoder {
	return &decoder{file: file, dir: dir, opts: o, pos: map[string]Pos{}}
}

// elemDefaults gives the value each new element of a list starts from, so
// that an element's missing keys take their defaults as top-level keys do.
var elemDefaults = map[reflect.Type]func() reflect.Value{
	reflect.TypeFor[Inbound]():     func() reflect.Value { return reflect.ValueOf(DefaultInbound()) },
	reflect.TypeFor[Destination](): func() reflect.Value { return reflect.ValueOf(DefaultDestination()) },
	reflect.TypeFor[CodeMap]():     func() reflect.Value { return reflect.ValueOf(DefaultCodeMap()) },
}

var (
	durationType   = reflect.TypeFor[time.Duration]()
	secretType     = reflect.TypeFor[Secret]()
	digestType     = reflect.TypeFor[Digest]()
	outOfOrderType = reflect.TypeFor[OutOfOrder]()
	yamlLine       = regexp.MustCompile(`^yaml: line (\d+): `)
)

func (d *decoder) nodePos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) problem(n *yaml.Node, path, msg string) {
	d.problems = append(d.problems, Problem{Pos: d.nodePos(n), Key: path, Msg: msg})
}

// problemAt reports a mistake at the key path, or at the nearest enclosing
// key that was written when path itself was left to its default. It says
// nothing about a key, or a key inside one, that already failed to decode.
func (d *decoder) problemAt(path, msg string) {
	for p := path; p != ""; p = parentPath(p) {
		if d.muted[p] {
			return
		}
	}
	d.problems = append(d.problems, Problem{Pos: d.lookup(path), Key: path, Msg: msg})
}

// lookup returns where path, or its nearest written parent, is in the file.
func (d *decoder) lookup(path string) Pos {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := d.pos[p]; ok {
			return pos
		}
	}
	return Pos{File: d.file}
}

// parentPath drops the last element of a key path: a.b → a, a[2] → a,
// a["x.y"] → a.
func parentPath(p string) string {
	if strings.HasSuffix(p, `"]`) {
		if i := strings.LastIndex(p, `["`); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// decodeFile parses data and decodes its one document onto c. It reports
// whether the file was readable YAML, so that validation is worth running.
func (d *decoder) decodeFile(data []byte, c *Config) bool {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return true // an empty file: validation says what is missing
		}
		d.syntaxProblem(err)
		return false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.problem(&extra, "", "a configuration file holds one YAML document; remove the second ---")
	} else if !errors.Is(err, io.EOF) {
		d.syntaxProblem(err)
		return false
	}
	if len(doc.Content) > 0 {
		d.decodeValue("", doc.Content[0], reflect.ValueOf(c).Elem(), false)
	}
	// A key that could not be decoded holds its default or nothing, so
	// validation would report it again in other words ("name is required"
	// after "want a string"); mute validation on those keys.
	d.muted = map[string]bool{}
	for _, p := range d.problems {
		if p.Key != "" {
			d.muted[p.Key] = true
		}
	}
	return true
}

// syntaxProblem turns a yaml.v3 parse error into a Problem at its line.
func (d *decoder) syntaxProblem(err error) {
	msg := err.Error()
	p := Problem{Pos: Pos{File: d.file}}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Pos.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		// yaml.v3 names the line only from line 2 on: a parse error with
		// no line is on the first.
		p.Pos.Line = 1
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.Msg = "YAML syntax: " + msg
	d.problems = append(d.problems, p)
}

// decodeValue decodes n onto v. A null leaves v as it was (its default).
// size marks an int that is written as a byte size.
func (d *decoder) decodeValue(path string, n *yaml.Node, v reflect.Value, size bool) {
	n = resolveAlias(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	switch v.Type() {
	case durationType:
		d.decodeDuration(path, n, v)
		return
	case secretType:
		if s, ok := d.decodeSecret(path, n); ok {
			v.Set(reflect.ValueOf(s))
		}
		return
	case digestType:
		if dg, ok := d.decodeDigest(path, n); ok {
			v.Set(reflect.ValueOf(dg))
		}
		return
	case outOfOrderType:
		// `out_of_order: reject`, or a mapping {hold: 30s}.
		if n.Kind == yaml.ScalarNode {
			switch n.Value {
			case "reject":
			case "hold":
				d.problem(n, path, "hold needs a time: write out_of_order: {hold: 30s}")
			default:
				d.problem(n, path, fmt.Sprintf("want reject or {hold: DURATION}, got %q%s", n.Value, suggest(n.Value, []string{"reject", "hold"})))
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(path, n, v)
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decodeValue(path, n, nv.Elem(), size)
		v.Set(nv)
	case reflect.Slice:
		d.decodeSlice(path, n, v)
	case reflect.Map:
		d.decodeMap(path, n, v)
	case reflect.String:
		if d.scalar(path, n, "a string") {
			v.SetString(n.Value)
		}
	case reflect.Int:
		if !d.scalar(path, n, "an integer") {
			return
		}
		if size {
			b, err := parseSize(n.Value)
			if err != nil {
				d.problem(n, path, err.Error())
				return
			}
			v.SetInt(int64(b))
			return
		}
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			d.problem(n, path, fmt.Sprintf("want an integer, got %q", n.Value))
			return
		}
		v.SetInt(int64(i))
	case reflect.Float64:
		if !d.scalar(path, n, "a number") {
			return
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			d.problem(n, path, fmt.Sprintf("want a number, got %q", n.Value))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if !d.scalar(path, n, "true or false") {
			return
		}
		if n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.problem(n, path, fmt.Sprintf("want true or false, got %q", n.Value))
			return
		}
		v.SetBool(b)
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", v.Type(), path))
	}
}

// scalar reports whether n is a single value, and reports a problem when it
// is a list or mapping.
func (d *decoder) scalar(path string, n *yaml.Node, want string) bool {
	if n.Kind == yaml.ScalarNode {
		return true
	}
	d.problem(n, path, fmt.Sprintf("want %s, got %s", want, kindName(n)))
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func (d *decoder) decodeDuration(path string, n *yaml.Node, v reflect.Value) {
	const want = "want a duration such as 500ms, 30s, 10m or 168h"
	if !d.scalar(path, n, "a duration") {
		return
	}
	t, err := time.ParseDuration(n.Value)
	if err != nil {
		d.problem(n, path, fmt.Sprintf("%s, got %q", want, n.Value))
		return
	}
	if t <= 0 {
		d.problem(n, path, fmt.Sprintf("want a positive duration, got %q", n.Value))
		return
	}
	v.SetInt(int64(t))
}

// field is one yaml-tagged struct field.
type field struct {
	index int
	size  bool
}

func structFields(t reflect.Type) (map[string]field, []string) {
	fields := map[string]field{}
	var names []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		name, opt, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = field{index: i, size: opt == "size"}
		names = append(names, name)
	}
	return fields, names
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, fmt.Sprintf("want a mapping of keys to values, got %s", kindName(n)))
		return
	}
	fields, names := structFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := joinPath(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.problem(k, kp, fmt.Sprintf("key repeated (first at line %d)", line))
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			d.problem(k, kp, "unknown key"+suggest(k.Value, names))
			continue
		}
		d.pos[kp] = d.nodePos(k)
		d.decodeValue(kp, val, v.Field(f.index), f.size)
	}
}

func (d *decoder) decodeSlice(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.problem(n, path, fmt.Sprintf("want a list, got %s", kindName(n)))
		return
	}
	et := v.Type().Elem()
	out := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, en := range n.Content {
		ep := fmt.Sprintf("%s[%d]", path, i)
		d.pos[ep] = d.nodePos(en)
		ev := reflect.New(et).Elem()
		if def, ok := elemDefaults[et]; ok {
			ev.Set(def())
		}
		d.decodeValue(ep, en, ev, false)
		out = reflect.Append(out, ev)
	}
	v.Set(out)
}

func (d *decoder) decodeMap(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, fmt.Sprintf("want a mapping of keys to values, got %s", kindName(n)))
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := fmt.Sprintf("%s[%q]", path, k.Value)
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			d.problem(k, path, "map keys must be non-empty text")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.problem(k, kp, fmt.Sprintf("key repeated (first at line %d)", line))
			continue
		}
		seen[k.Value] = k.Line
		d.pos[kp] = d.nodePos(k)
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decodeValue(kp, val, ev, false)
		out.SetMapIndex(reflect.ValueOf(k.Value), ev)
	}
	v.Set(out)
}

// sizeUnits are the suffixes a byte size may carry, longest first so that
// "MiB" is not read as "B".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// parseSize reads a byte size such as 4MiB, 512KB or 1048576.
func parseSize(s string) (int, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("want a positive size such as 4MiB, 512KiB, 1MB or a number of bytes, got %q", s)
	}
	return int(n * mult), nil
}
