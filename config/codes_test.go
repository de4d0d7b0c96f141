package config

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const codesBase = `
inbound:
  - {name: ehr, listen: 127.0.0.1:2575}
  - {name: lab-results, listen: 127.0.0.1:2576}
`

// A code map's file is read with the configuration: `careflow check`
// names the CSV file and line of each bad row, and the YAML line of each
// bad key, with a suggestion where one is near.
func TestCodeMapProblems(t *testing.T) {
	name := filepath.Join("testdata", "codes", "careflow.yaml")
	csv := filepath.Join("testdata", "codes", "bad.csv")
	tests := []struct {
		name, yaml string
		want       []string // "file:line: key: message" prefixes, in order
	}{
		{"bad rows", `
codes:
  - {name: lab-loinc, file: bad.csv, version: "3", fields: [OBX-3]}
`, []string{
			csv + ":3: codes[0].file: 4 columns, but the header names 5",
			csv + `:4: codes[0].file: local code "GLU" of system L is already mapped at line 2`,
			csv + ":5: codes[0].file: code is empty",
		}},
		{"unknown interface, field and policy", `
codes:
  - name: lab-loinc
    file: lab.csv
    version: "3"
    interfaces: [lab-result]
    fields: [OBX-3, OBX3]
    unmapped: held
`, []string{
			name + `:10: codes[0].interfaces[0]: unknown inbound interface "lab-result" (did you mean "lab-results"?)`,
			name + `:11: codes[0].fields[1]: "OBX3" is not a coded field a map can apply to (did you mean "OBX-3"?)`,
			name + `:12: codes[0].unmapped: want pass or hold, got "held" (did you mean "hold"?)`,
		}},
		{"missing file, version and fields", `
codes:
  - {name: lab-loinc, file: nowhere.csv}
`, []string{
			name + ":7: codes[0].fields: say which coded fields",
			name + ":7: codes[0].file: " + filepath.Join("testdata", "codes", "nowhere.csv") + ": code map file: no such file or directory",
			name + ":7: codes[0].version: version is required",
		}},
		{"two maps of one name", `
codes:
  - {name: lab, file: lab.csv, version: "1", fields: [OBX-3]}
  - {name: lab, file: lab.csv, version: "2", fields: [OBR-4]}
`, []string{name + `:8: codes[1].name: name "lab" is already used by codes[0].name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(name, []byte(codesBase+tt.yaml), WithLookupEnv(noEnv))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse = %v, want Problems", err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.Error())
			}
			slices.Sort(got)
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d\n got %s\nwant %s...", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestCodeMapLoaded(t *testing.T) {
	name := filepath.Join("testdata", "codes", "careflow.yaml")
	c, err := Parse(name, []byte(codesBase+`
codes:
  - name: lab-loinc
    file: lab.csv
    version: "2024-06"
    interfaces: [lab-results]
    fields: [OBX-3, OBR-4]
    systems: [L]
  - {name: lab-held, file: lab.csv, version: "1", fields: [OBX-6], unmapped: hold}
`), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Codes[0].Binding()
	if e, ok := b.Map.Lookup("L", "GLU"); !ok || e.Code != "2345-7" || b.Map.ID() != "lab-loinc@2024-06" || b.Hold {
		t.Errorf("binding %+v, lookup %+v", b, e)
	}
	if !b.AppliesTo("lab-results", "OBR-4") || b.AppliesTo("ehr", "OBR-4") || !b.Takes("l") {
		t.Errorf("binding applies wrongly: %+v", b)
	}
	if c.Codes[1].Unmapped != UnmappedHold || !c.Codes[1].Binding().Hold || !filepath.IsAbs(c.Codes[0].File) && c.Codes[0].File != filepath.Join("testdata", "codes", "lab.csv") {
		t.Errorf("codes %+v", c.Codes)
	}
	if c.Codes[0].Unmapped != UnmappedPass {
		t.Errorf("unmapped defaults to %q", c.Codes[0].Unmapped)
	}
}
