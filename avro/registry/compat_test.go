package registry

import (
	"strings"
	"testing"
)

func TestCheckBackward(t *testing.T) {
	rec := func(fields string) string {
		return `{"type":"record","name":"R","namespace":"t","fields":[` + fields + `]}`
	}
	const (
		a      = `{"name":"a","type":"string","default":""}`
		nested = `{"name":"n","default":{},"type":{"type":"record","name":"N","fields":[%s]}}`
	)
	withNested := func(fields string) string { return strings.Replace(nested, "%s", fields, 1) }
	tests := []struct {
		name        string
		old, next   string
		wantErrPart string // "" when compatible
	}{
		{"same", rec(a), rec(a), ""},
		{"add field with default", rec(a), rec(a + `,{"name":"b","type":"int","default":0}`), ""},
		{"add nullable field", rec(a), rec(a + `,{"name":"b","type":["null","string"],"default":null}`), ""},
		{"add field without default", rec(a), rec(a + `,{"name":"b","type":"int"}`), "t.R.b: field added without a default"},
		{"remove field", rec(a + `,{"name":"b","type":"int","default":0}`), rec(a), ""},
		{"change type", rec(a), rec(`{"name":"a","type":"int","default":0}`), "t.R.a: type changed from string to int"},
		{"promote int to long", rec(`{"name":"a","type":"int"}`), rec(`{"name":"a","type":"long"}`), ""},
		{"demote long to int", rec(`{"name":"a","type":"long"}`), rec(`{"name":"a","type":"int"}`), "type changed from long to int"},
		{"make nullable", rec(a), rec(`{"name":"a","type":["null","string"],"default":null}`), ""},
		{"drop union branch", rec(`{"name":"a","type":["null","string","int"],"default":null}`), rec(`{"name":"a","type":["null","string"],"default":null}`), "no branch of the new union reads the old type int"},
		{"timestamp stays long", rec(`{"name":"a","type":{"type":"long","logicalType":"timestamp-millis"},"default":0}`), rec(`{"name":"a","type":"long","default":0}`), ""},
		{"nested field without default", rec(withNested(a)), rec(withNested(a + `,{"name":"x","type":"string"}`)), "t.R.n.x: field added without a default"},
		{"nested field with default", rec(withNested(a)), rec(withNested(a + `,{"name":"x","type":"string","default":""}`)), ""},
		{"array item field without default",
			rec(`{"name":"l","default":[],"type":{"type":"array","items":{"type":"record","name":"I","fields":[]}}}`),
			rec(`{"name":"l","default":[],"type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"z","type":"int"}]}}}`),
			"t.R.l[].z: field added without a default"},
		{"reference by name",
			rec(withNested(a) + `,{"name":"m","type":"N","default":{}}`),
			rec(withNested(a+`,{"name":"x","type":"int","default":0}`) + `,{"name":"m","type":"N","default":{}}`), ""},
		{"enum symbol appended", rec(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}`), rec(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}}`), ""},
		{"enum symbol removed", rec(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}`), rec(`{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}`), "enum symbol B was removed"},
		{"renamed record", rec(a), strings.Replace(rec(a), `"name":"R"`, `"name":"S"`, 1), "record renamed from t.R to t.S"},
		{"field renamed with alias", rec(a), rec(`{"name":"b","aliases":["a"],"type":"string"}`), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBackward(tt.next, tt.old)
			switch {
			case tt.wantErrPart == "" && err != nil:
				t.Fatalf("unexpected incompatibility: %v", err)
			case tt.wantErrPart != "" && err == nil:
				t.Fatalf("accepted; want error containing %q", tt.wantErrPart)
			case tt.wantErrPart != "" && !strings.Contains(err.Error(), tt.wantErrPart):
				t.Fatalf("error %q does not contain %q", err, tt.wantErrPart)
			}
		})
	}
}
