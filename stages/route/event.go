// This file declares the `event` variable to CEL as the Go type
// avro.ClinicalEvent, so that a route condition is type-checked when the
// configuration is loaded: a misspelt field or a string compared with a
// number is an error at `careflow check`, not a silent non-match at run
// time. Field names are the json tags of avro/records.go, the names the
// JSON destinations and docs/routing.md use.

package route

import (
	"path"
	"reflect"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	"github.com/careflow-health/careflow/avro"
)

// eventType is the Go type of the `event` variable.
var eventType = reflect.TypeFor[avro.ClinicalEvent]()

// records maps the CEL name of every struct type reachable from
// ClinicalEvent ("avro.Order") to its Go type.
var records = func() map[string]reflect.Type {
	m := map[string]reflect.Type{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t.PkgPath() != eventType.PkgPath() {
			return // time.Time is a CEL timestamp, not a record
		}
		if _, seen := m[celName(t)]; seen {
			return
		}
		m[celName(t)] = t
		for _, f := range reflect.VisibleFields(t) {
			walk(f.Type)
		}
	}
	walk(eventType)
	return m
}()

// celName is the name CEL gives a Go struct type: the last element of its
// package path, a dot, and its name ("avro.ClinicalEvent").
func celName(t reflect.Type) string { return path.Base(t.PkgPath()) + "." + t.Name() }

// fieldName is the CEL name of a struct field: its json name. cel-go
// leaves out a field named "-", as encoding/json does.
func fieldName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// fieldNames lists the CEL field names of the struct type t, in
// declaration order.
func fieldNames(t reflect.Type) []string {
	var names []string
	for _, f := range reflect.VisibleFields(t) {
		if f.IsExported() && fieldName(f) != "-" {
			names = append(names, fieldName(f))
		}
	}
	return names
}

// field finds t's field with CEL name name.
func field(t reflect.Type, name string) (reflect.StructField, bool) {
	for _, f := range reflect.VisibleFields(t) {
		if f.IsExported() && fieldName(f) == name && name != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// eventEnvOptions declares `event` and the record types under it.
func eventEnvOptions() []cel.EnvOption {
	return []cel.EnvOption{
		ext.NativeTypes(eventType, ext.ParseStructField(fieldName)),
		func(e *cel.Env) (*cel.Env, error) {
			return cel.CustomTypeProvider(absentRecords{e.CELTypeProvider()})(e)
		},
		cel.Variable(Variable, cel.ObjectType(celName(eventType))),
	}
}

// absentRecords changes how cel-go reads a record that is missing: a nil
// pointer field (ClinicalEvent.Encounter when the message had no PV1)
// reads as null rather than as an empty record, so `event.encounter ==
// null` means what it says; and a field read through such a null reads as
// its zero value ("" for the strings of an encounter) instead of failing,
// so an unguarded `event.encounter.patient_class == "I"` is false for an
// event without an encounter, as it is for one whose PV1-2 is empty.
type absentRecords struct{ types.Provider }

// nullNative is what a CEL null unwraps to when a qualifier receives it.
var nullNative = types.NullValue.Value()

// FindStructFieldType implements types.Provider.
func (p absentRecords) FindStructFieldType(structType, name string) (*types.FieldType, bool) {
	ft, ok := p.Provider.FindStructFieldType(structType, name)
	if !ok {
		return nil, false
	}
	rt, known := records[structType]
	if !known {
		return ft, true
	}
	sf, _ := field(rt, name)
	zero := reflect.Zero(sf.Type).Interface()
	nullable := sf.Type.Kind() == reflect.Pointer
	isSet, getFrom := ft.IsSet, ft.GetFrom
	out := *ft
	out.IsSet = func(obj any) bool { return !absent(obj) && isSet(obj) }
	out.GetFrom = func(obj any) (any, error) {
		switch {
		case absent(obj) && nullable:
			return nil, nil
		case absent(obj):
			return zero, nil
		case nullable:
			v := reflect.Indirect(reflect.ValueOf(obj)).FieldByIndex(sf.Index)
			if v.IsNil() {
				return nil, nil // cel-go would make an empty record of it
			}
			return v.Interface(), nil
		}
		return getFrom(obj)
	}
	return &out, true
}

// absent reports whether obj, the record a field is read from, is missing.
func absent(obj any) bool {
	if obj == nil || obj == nullNative || obj == types.NullValue {
		return true
	}
	v := reflect.ValueOf(obj)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
