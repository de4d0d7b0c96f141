// This file checks BACKWARD compatibility the way the Avro specification
// resolves schemas: a consumer holding the new schema (the reader) must be
// able to read every record written with the previous one (the writer).
// In practice that means: a field the new schema adds needs a default, a
// field's type may only change along Avro's promotions (int→long→float→
// double, string↔bytes), and an enum may only gain symbols.

package registry

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// checkBackward returns why reader cannot read data written with writer,
// or nil when it can. Both schemas have already been parsed by goavro.
func checkBackward(reader, writer string) error {
	var r, w any
	if err := json.Unmarshal([]byte(reader), &r); err != nil {
		return fmt.Errorf("new schema is not JSON: %w", err)
	}
	if err := json.Unmarshal([]byte(writer), &w); err != nil {
		return fmt.Errorf("registered schema is not JSON: %w", err)
	}
	c := compat{reader: names{}, writer: names{}, seen: map[[2]string]bool{}}
	c.reader.collect(r, "")
	c.writer.collect(w, "")
	return c.check(r, "", w, "", "")
}

// names maps the full name of every named type in a schema to its
// definition, so that a reference by name can be followed.
type names map[string]map[string]any

var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

// collect records the named types under node, whose enclosing namespace
// is ns.
func (n names) collect(node any, ns string) {
	switch v := node.(type) {
	case []any:
		for _, b := range v {
			n.collect(b, ns)
		}
	case map[string]any:
		if name, ok := v["name"].(string); ok {
			if own, ok := v["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = own
			}
			full := fullName(name, ns)
			n[full] = v
			if i := strings.LastIndex(full, "."); i >= 0 {
				ns = full[:i]
			}
		}
		if fields, ok := v["fields"].([]any); ok {
			for _, f := range fields {
				if fm, ok := f.(map[string]any); ok {
					n.collect(fm["type"], ns)
				}
			}
		}
		n.collect(v["items"], ns)
		n.collect(v["values"], ns)
		if t, ok := v["type"].(map[string]any); ok {
			n.collect(t, ns)
		}
	}
}

// resolve turns node into a primitive name, a union ([]any) or a complex
// definition, following references, and returns the namespace that applies
// inside it.
func (n names) resolve(node any, ns string) (any, string) {
	switch v := node.(type) {
	case string:
		if primitives[v] {
			return v, ns
		}
		full := fullName(v, ns)
		def, ok := n[full]
		if !ok {
			def, ok = n[v]
			full = v
		}
		if !ok {
			return v, ns // unknown; compared by name below
		}
		return n.resolve(def, nsOf(full))
	case map[string]any:
		t, _ := v["type"].(string)
		if primitives[t] { // {"type": "long", "logicalType": ...}
			return t, ns
		}
		if name, ok := v["name"].(string); ok {
			if own, ok := v["namespace"].(string); ok && !strings.Contains(name, ".") {
				return v, own
			}
			return v, nsOf(fullName(name, ns))
		}
		if t == "" {
			return n.resolve(v["type"], ns)
		}
	}
	return node, ns
}

func nsOf(full string) string {
	if i := strings.LastIndex(full, "."); i >= 0 {
		return full[:i]
	}
	return ""
}

type compat struct {
	reader, writer names
	seen           map[[2]string]bool // record pairs already checked, for recursive types
}

// promotions lists, per writer type, the reader types that can read it.
var promotions = map[string][]string{
	"int":    {"long", "float", "double"},
	"long":   {"float", "double"},
	"float":  {"double"},
	"string": {"bytes"},
	"bytes":  {"string"},
}

func typeName(node any, ns string) string {
	switch v := node.(type) {
	case string:
		return v
	case []any:
		return "union"
	case map[string]any:
		if name, ok := v["name"].(string); ok {
			return fullName(name, ns)
		}
		if t, ok := v["type"].(string); ok {
			return t
		}
	}
	return fmt.Sprint(node)
}

func kindOf(node any) string {
	switch v := node.(type) {
	case string:
		return v
	case []any:
		return "union"
	case map[string]any:
		t, _ := v["type"].(string)
		return t
	}
	return ""
}

func (c compat) check(r any, rns string, w any, wns string, path string) error {
	r, rns = c.reader.resolve(r, rns)
	w, wns = c.writer.resolve(w, wns)
	if wu, ok := w.([]any); ok {
		for _, b := range wu {
			if err := c.check(r, rns, b, wns, path); err != nil {
				return err
			}
		}
		return nil
	}
	if ru, ok := r.([]any); ok {
		for _, b := range ru {
			if c.check(b, rns, w, wns, path) == nil {
				return nil
			}
		}
		return fmt.Errorf("%s: no branch of the new union reads the old type %s", at(path), typeName(w, wns))
	}
	rk, wk := kindOf(r), kindOf(w)
	if rk != wk {
		if primitives[rk] && slices.Contains(promotions[wk], rk) {
			return nil
		}
		return fmt.Errorf("%s: type changed from %s to %s", at(path), typeName(w, wns), typeName(r, rns))
	}
	rm, _ := r.(map[string]any)
	wm, _ := w.(map[string]any)
	switch rk {
	case "record":
		return c.record(rm, rns, wm, wns, path)
	case "enum":
		symbols, _ := rm["symbols"].([]any)
		if _, ok := rm["default"]; ok {
			return nil
		}
		old, _ := wm["symbols"].([]any)
		for _, s := range old {
			if !slices.Contains(symbols, s) {
				return fmt.Errorf("%s: enum symbol %v was removed", at(path), s)
			}
		}
	case "array":
		return c.check(rm["items"], rns, wm["items"], wns, path+"[]")
	case "map":
		return c.check(rm["values"], rns, wm["values"], wns, path+"{}")
	case "fixed":
		if typeName(r, rns) != typeName(w, wns) || fmt.Sprint(rm["size"]) != fmt.Sprint(wm["size"]) {
			return fmt.Errorf("%s: fixed type changed from %s to %s", at(path), typeName(w, wns), typeName(r, rns))
		}
	}
	return nil
}

func (c compat) record(r map[string]any, rns string, w map[string]any, wns string, path string) error {
	rn, wn := typeName(r, rns), typeName(w, wns)
	if rn != wn {
		return fmt.Errorf("%s: record renamed from %s to %s", at(path), wn, rn)
	}
	if c.seen[[2]string{rn, wn}] {
		return nil
	}
	c.seen[[2]string{rn, wn}] = true
	if path == "" {
		path = rn
	}
	old := map[string]map[string]any{}
	wf, _ := w["fields"].([]any)
	for _, f := range wf {
		if fm, ok := f.(map[string]any); ok {
			name, _ := fm["name"].(string)
			old[name] = fm
		}
	}
	rf, _ := r["fields"].([]any)
	for _, f := range rf {
		fm, _ := f.(map[string]any)
		name, _ := fm["name"].(string)
		prev, ok := old[name]
		if !ok {
			for _, a := range asStrings(fm["aliases"]) {
				if prev, ok = old[a]; ok {
					break
				}
			}
		}
		if !ok {
			if _, hasDefault := fm["default"]; !hasDefault {
				return fmt.Errorf("%s.%s: field added without a default", path, name)
			}
			continue
		}
		if err := c.check(fm["type"], rns, prev["type"], wns, path+"."+name); err != nil {
			return err
		}
	}
	return nil
}

func asStrings(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, s := range a {
		if s, ok := s.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func at(path string) string {
	if path == "" {
		return "schema"
	}
	return path
}
