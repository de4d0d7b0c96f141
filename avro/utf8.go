package avro

import (
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// InvalidUTF8 returns the path, by json field names ("patient.family_name",
// "observations[2].value"), of the first string in v (a record, or a
// pointer to one) that is not valid UTF-8, or "" when every string is.
// Every string careflow writes must be UTF-8: an Avro string that is not
// cannot be read by every consumer, and JSON would silently turn it into
// U+FFFD.
func InvalidUTF8(v any) string { return invalidUTF8(reflect.ValueOf(v), "") }

func invalidUTF8(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return path
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return invalidUTF8(v.Elem(), path)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "" // bytes, not text
		}
		for i := range v.Len() {
			if p := invalidUTF8(v.Index(i), path+"["+strconv.Itoa(i)+"]"); p != "" {
				return p
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = v.Type().Field(i).Name
			}
			if path != "" {
				name = path + "." + name
			}
			if p := invalidUTF8(v.Field(i), name); p != "" {
				return p
			}
		}
	}
	return ""
}
