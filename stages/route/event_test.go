package route

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"gopkg.in/yaml.v3"

	"github.com/careflow-health/careflow/avro"
)

// filled returns a ClinicalEvent with every field set: each string to its
// own path, each int to a different number, each list to one element and
// the encounter present, so that reading a field by its CEL name and
// finding the right value shows the name is bound to the right field.
func filled() *avro.ClinicalEvent {
	ev := new(avro.ClinicalEvent)
	n := int64(0)
	var fill func(v reflect.Value, path string)
	fill = func(v reflect.Value, path string) {
		switch {
		case v.Type() == reflect.TypeFor[time.Time]():
			v.Set(reflect.ValueOf(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)))
		case v.Kind() == reflect.String:
			v.SetString(path)
		case v.Kind() == reflect.Int:
			n++
			v.SetInt(n)
		case v.Kind() == reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), path)
		case v.Kind() == reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
			fill(v.Index(0), path+"[0]")
		case v.Kind() == reflect.Struct:
			for _, f := range reflect.VisibleFields(v.Type()) {
				fill(v.FieldByIndex(f.Index), path+"."+fieldName(f))
			}
		}
	}
	fill(reflect.ValueOf(ev).Elem(), Variable)
	return ev
}

// TestEventFields walks every field of ClinicalEvent and checks that CEL
// declares it under its json name with the type the guide gives, that a
// condition reading it gets the Go value, that on an event without
// encounter or lists every field outside a list reads as its zero value
// without an error, and that docs/routing.md's table names it.
func TestEventFields(t *testing.T) {
	e, err := env()
	if err != nil {
		t.Fatal(err)
	}
	prov := e.CELTypeProvider()
	full, empty := filled(), &avro.ClinicalEvent{}
	doc := eventSection(t)
	eval := func(path string, ev *avro.ClinicalEvent, want *cel.Type) (any, error) {
		t.Helper()
		ast, iss := e.Compile(path)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", path, iss.Err())
		}
		if !ast.OutputType().IsExactType(want) {
			t.Errorf("%s: checker says %s, want %s", path, ast.OutputType(), want)
		}
		prg, err := e.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := prg.Eval(eventActivation{ev})
		if err != nil {
			return nil, err
		}
		return out.Value(), nil
	}
	var walk func(rt reflect.Type, path string, v reflect.Value, inList bool)
	walk = func(rt reflect.Type, path string, v reflect.Value, inList bool) {
		celNames, ok := prov.FindStructFieldNames(celName(rt))
		if !ok {
			t.Fatalf("%s: CEL does not know %s", path, celName(rt))
		}
		goNames := fieldNames(rt)
		slices.Sort(celNames)
		slices.Sort(goNames)
		if !slices.Equal(celNames, goNames) {
			t.Errorf("%s: CEL fields %v, Go json names %v", path, celNames, goNames)
		}
		for _, f := range reflect.VisibleFields(rt) {
			name := fieldName(f)
			p := path + "." + name
			if !strings.Contains(doc, "."+name+"`") && !strings.Contains(doc, "."+name+"[i]`") {
				t.Errorf("%s is not in docs/routing.md's table of the event variable", p)
			}
			ft, ok := prov.FindStructFieldType(celName(rt), name)
			if !ok {
				t.Errorf("%s: not declared", p)
				continue
			}
			fv := v.FieldByIndex(f.Index)
			var want *cel.Type
			var goVal any
			switch ty := f.Type; {
			case ty == reflect.TypeFor[time.Time]():
				want, goVal = cel.TimestampType, fv.Interface()
			case ty.Kind() == reflect.String:
				want, goVal = cel.StringType, fv.String()
			case ty.Kind() == reflect.Int:
				want, goVal = cel.IntType, fv.Int()
			case ty == reflect.TypeFor[[]string]():
				want = cel.ListType(cel.StringType)
				walkValue(t, eval, p+"[0]", full, cel.StringType, fv.Index(0).String())
			case ty.Kind() == reflect.Slice && ty.Elem().Kind() == reflect.Struct:
				want = cel.ListType(cel.ObjectType(celName(ty.Elem())))
				walk(ty.Elem(), p+"[0]", fv.Index(0), true)
			case ty.Kind() == reflect.Struct:
				want = cel.ObjectType(celName(ty))
				walk(ty, p, fv, inList)
			case ty.Kind() == reflect.Pointer && ty.Elem().Kind() == reflect.Struct:
				want = cel.ObjectType(celName(ty.Elem()))
				walk(ty.Elem(), p, fv.Elem(), inList)
			default:
				t.Errorf("%s: Go type %s has no case in this test; add one, and a row to docs/routing.md", p, ty)
				continue
			}
			if !ft.Type.IsExactType(want) {
				t.Errorf("%s: declared %s, want %s", p, ft.Type, want)
			}
			if goVal == nil {
				continue
			}
			walkValue(t, eval, p, full, want, goVal)
			if !inList {
				got, err := eval(p, empty, want)
				zero := reflect.Zero(f.Type).Interface()
				if f.Type.Kind() == reflect.Int {
					zero = int64(0)
				}
				if err != nil || want != cel.TimestampType && got != zero {
					t.Errorf("%s on an empty event = %v, %v; want %v", p, got, err, zero)
				}
			}
		}
	}
	walk(eventType, Variable, reflect.ValueOf(full).Elem(), false)
}

func walkValue(t *testing.T, eval func(string, *avro.ClinicalEvent, *cel.Type) (any, error), path string, ev *avro.ClinicalEvent, want *cel.Type, goVal any) {
	t.Helper()
	got, err := eval(path, ev, want)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if tm, ok := goVal.(time.Time); ok {
		if g, ok := got.(time.Time); !ok || !g.Equal(tm) {
			t.Errorf("%s = %v, want %v", path, got, tm)
		}
		return
	}
	if got != goVal {
		t.Errorf("%s = %v (%T), want %v", path, got, got, goVal)
	}
}

// eventSection is the part of docs/routing.md that documents `event`.
func eventSection(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/routing.md")
	if err != nil {
		t.Fatal(err)
	}
	_, s, ok := strings.Cut(string(b), "### The `event` variable")
	if !ok {
		t.Fatal("docs/routing.md has no section \"The `event` variable\"")
	}
	s, _, _ = strings.Cut(s, "\n### ")
	return s
}

// TestDocumentedConditions compiles every condition the documentation and
// the demo show: the ```cel blocks of docs/routing.md, the routes of every
// ```yaml block in docs/routing.md and docs/configuration.md, and the
// demo's careflow.yaml.
func TestDocumentedConditions(t *testing.T) {
	var conds []string
	routesOf := func(file, y string) {
		var doc struct {
			Routes []struct{ When string }
		}
		if err := yaml.Unmarshal([]byte(y), &doc); err != nil {
			t.Errorf("%s: yaml block: %v", file, err)
		}
		for _, r := range doc.Routes {
			conds = append(conds, r.When)
		}
	}
	for _, file := range []string{"../../docs/routing.md", "../../docs/configuration.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(b), "```")
		for i := 1; i < len(blocks); i += 2 {
			lang, body, _ := strings.Cut(blocks[i], "\n")
			switch {
			case lang == "cel":
				for _, l := range strings.Split(body, "\n") {
					if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "//") {
						conds = append(conds, l)
					}
				}
			case lang == "yaml" && strings.Contains(body, "routes:"):
				routesOf(file, body)
			}
		}
	}
	b, err := os.ReadFile("../../examples/demo/careflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	routesOf("careflow.yaml", string(b))
	if len(conds) < 12 {
		t.Fatalf("found %d conditions; the documentation moved?", len(conds))
	}
	for _, c := range conds {
		if _, err := Compile(c); err != nil {
			t.Errorf("%s\n%v", c, err)
		}
	}
}

// TestAbsentRecordReads: the rule that makes a missing encounter null
// applies to what a qualifier may be handed for it.
func TestAbsentRecordReads(t *testing.T) {
	for _, obj := range []any{nil, types.NullValue, types.NullValue.Value(), (*avro.Encounter)(nil)} {
		if !absent(obj) {
			t.Errorf("absent(%#v) = false", obj)
		}
	}
	for _, obj := range []any{&avro.Encounter{}, avro.Encounter{}, avro.Order{}} {
		if absent(obj) {
			t.Errorf("absent(%#v) = true", obj)
		}
	}
}
