package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/careflow-health/careflow/stages/ownership"
)

const ownershipEstate = `
inbound:
  - {name: ehr, listen: 127.0.0.1:2575}
  - {name: lab-results, listen: 127.0.0.1:2576}
`

// TestOwnershipProblems reports each mistake in a matrix at the line and
// key an analyst must edit, with the nearest name when there is one.
func TestOwnershipProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"unknown system", `ownership:
  version: 1
  demographics:
    address: {owners: [ehr, portal-update]}
`, 8, "ownership.demographics.address.owners[1]", `no inbound interface is called "portal-update"`},
		{"unknown system with a suggestion", `ownership:
  version: 1
  results: {owners: [lab-result]}
`, 7, "ownership.results.owners[0]", `"lab-result" (did you mean "lab-results"?)`},
		{"unknown field", `ownership:
  version: 1
  demographics:
    adress: {owners: [ehr]}
`, 8, "ownership.demographics.adress", `unknown key (did you mean "address"?)`},
		{"unknown domain", `ownership:
  version: 1
  allergy: {owners: [ehr]}
`, 7, "ownership.allergy", `unknown key (did you mean "allergies"?)`},
		{"unknown others", `ownership:
  version: 1
  next_of_kin: {owners: [ehr], others: stripp}
`, 7, "ownership.next_of_kin.others", `want accept, strip or review, got "stripp" (did you mean "strip"?)`},
		{"no owners", `ownership:
  version: 1
  demographics:
    telecom: {others: accept}
`, 8, "ownership.demographics.telecom.owners", `name the inbound interface(s) that own demographics.telecom`},
		{"an owner twice", `ownership:
  version: 1
  orders: {owners: [ehr, ehr]}
`, 7, "ownership.orders.owners[1]", `"ehr" is listed twice`},
		{"rules without a version", `ownership:
  demographics:
    sex: {owners: [ehr]}
`, 5, "ownership.version", `the matrix needs a version`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(ownershipEstate+tc.yaml), WithLookupEnv(noEnv))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse error = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Pos.Line == tc.line && p.Key == tc.key && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("want problem at line %d key %q containing %q; got:\n%v", tc.line, tc.key, tc.msg, err)
		})
	}
}

// TestOwnershipMatrix reads a valid matrix into the rules the normalise
// stage applies.
func TestOwnershipMatrix(t *testing.T) {
	c, err := Parse("t.yaml", []byte(ownershipEstate+`ownership:
  version: "2024-06"
  demographics:
    address: {owners: [ehr], newer: true}
    telecom: {owners: [ehr, lab-results], others: accept}
  results: {owners: [lab-results], others: review}
`), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]OwnershipRule{
		ownership.Address: {Owners: []string{"ehr"}, Newer: true},
		ownership.Telecom: {Owners: []string{"ehr", "lab-results"}, Others: "accept"},
		ownership.Results: {Owners: []string{"lab-results"}, Others: "review"},
	}
	if got := c.Ownership.Rules(); !reflect.DeepEqual(got, want) {
		t.Errorf("rules\n got  %+v\n want %+v", got, want)
	}
	m, err := c.Ownership.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != "2024-06" {
		t.Errorf("version = %q", m.Version())
	}
	if r, _ := m.Rule(ownership.Address); r.Others != ownership.Strip {
		t.Errorf("address others = %q, want the default strip", r.Others)
	}
	// No ownership key: no matrix.
	c, err = Parse("t.yaml", []byte(ownershipEstate), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := c.Ownership.Matrix(); m != nil || err != nil {
		t.Errorf("no rules: matrix %v, %v; want none", m, err)
	}
}

// TestOwnershipKeysAreTheVocabulary: the YAML keys name exactly the
// fields stages/ownership governs, so no field can be configured under a
// name the matrix does not know, nor be left unconfigurable.
func TestOwnershipKeysAreTheVocabulary(t *testing.T) {
	var o Ownership
	var got []string
	for f, r := range o.rulesByField() {
		*r = &OwnershipRule{Owners: []string{"ehr"}}
		got = append(got, f)
	}
	if len(o.Rules()) != len(ownership.Fields()) || len(got) != len(ownership.Fields()) {
		t.Fatalf("config has %v, ownership has %v", got, ownership.Fields())
	}
	for _, f := range ownership.Fields() {
		if _, ok := o.Rules()[f]; !ok {
			t.Errorf("no YAML key for %s", f)
		}
	}
	// And the YAML spelling is the field name.
	text, demographics := "ownership:\n  version: 1\n", "  demographics:\n"
	for _, f := range ownership.Fields() {
		if field, ok := strings.CutPrefix(f, "demographics."); ok {
			demographics += "    " + field + ": {owners: [ehr]}\n"
		} else {
			text += "  " + f + ": {owners: [ehr]}\n"
		}
	}
	text += demographics
	c, err := Parse("t.yaml", []byte(ownershipEstate+text), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(c.Ownership.Rules()) != len(ownership.Fields()) {
		t.Errorf("decoded %d rules, want %d", len(c.Ownership.Rules()), len(ownership.Fields()))
	}
}

// TestOwnershipDocExample: the first matrix in docs/ownership.md is a
// valid configuration (with its interfaces declared).
func TestOwnershipDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/ownership.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "```yaml\nownership:")
	if start < 0 {
		t.Fatal("docs/ownership.md has no ownership example")
	}
	block := text[start+len("```yaml\n"):]
	block = block[:strings.Index(block, "```")]
	estate := `
inbound:
  - {name: ehr, listen: 127.0.0.1:2575}
  - {name: lab-results, listen: 127.0.0.1:2576}
  - {name: pas, listen: 127.0.0.1:2577}
  - {name: portal-updates, transport: http}
http: {listen: 127.0.0.1:8080}
`
	c, err := Parse("t.yaml", []byte(estate+block), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatalf("docs/ownership.md example: %v", err)
	}
	if len(c.Ownership.Rules()) != len(ownership.Fields()) {
		t.Errorf("the example gives %d rules; it should show every field (%d)", len(c.Ownership.Rules()), len(ownership.Fields()))
	}
}
