package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"google.golang.org/protobuf/proto"

	"github.com/careflow-health/careflow/avro"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// demoPatient is a patient as normalise maps a demo ADT^A08 (PID-3 MRN
// and NHS number, PID-5, -7, -8, -11, -13).
func demoPatient() *avro.Patient {
	return &avro.Patient{
		Identifiers: []avro.Identifier{
			{Value: "H100234", AssigningAuthority: "HOSP", TypeCode: "MR"},
			{Value: "9990000018", AssigningAuthority: "NHS", TypeCode: "NH"},
		},
		FamilyName: "HARPER", GivenNames: []string{"CALDER", "J"},
		BirthDate: "20121019", Sex: "U",
		Addresses: []avro.Address{{Street: "1 Quarry Hill", City: "Exampleton", PostalCode: "EX9 4AB", Country: "GBR", Type: "H"}},
		Telecoms:  []avro.Telecom{{Value: "07700 907484", Use: "PRN", Equipment: "CP"}, {Value: "01632 960001", Use: "WPN", Equipment: "PH"}},
	}
}

// The demo's patient as FHIR JSON, against testdata/patient.json (go
// test -update rewrites it), and read back by google/fhir's own
// unmarshaller, which validates it.
func TestPatientGolden(t *testing.T) {
	p, err := Patient(demoPatient(), nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "patient.json", p)
}

// golden checks r's FHIR JSON against testdata/name (go test -update
// rewrites it), and that google/fhir's own unmarshaller, which
// validates, reads it back.
func golden(t *testing.T, name string, r proto.Message) {
	t.Helper()
	got, err := JSON(r)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("FHIR JSON differs from %s (go test -update to accept):\n%s", path, pretty.Bytes())
	}
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Unmarshal(got); err != nil {
		t.Errorf("google/fhir refuses careflow's %s: %v", name, err)
	}
}

// PID-8 and PID-7, row by row of the v2-to-FHIR tables; a birth date no
// FHIR date holds is an error at Patient.birthDate, from PID-7.
func TestPatientFields(t *testing.T) {
	tests := []struct {
		name, sex, birth string
		want             string // a fragment of the JSON
		err              string // the element path of the error
	}{
		{"male", "M", "", `"gender":"male"`, ""},
		{"female, lower case", "f", "", `"gender":"female"`, ""},
		{"ambiguous is other", "A", "", `"gender":"other"`, ""},
		{"not applicable is unknown", "N", "", `"gender":"unknown"`, ""},
		{"outside table 0001: left out", "X", "", `"resourceType":"Patient"}`, ""},
		{"a year", "", "1980", `"birthDate":"1980"`, ""},
		{"a month", "", "198002", `"birthDate":"1980-02"`, ""},
		{"a day with a time", "", "19800214123000", `"birthDate":"1980-02-14"`, ""},
		{"not a date", "", "14/02/1980", "", "Patient.birthDate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Patient(&avro.Patient{Sex: tc.sex, BirthDate: tc.birth}, nil)
			if tc.err != "" {
				var fe *Error
				if !errors.As(err, &fe) || fe.Path != tc.err || fe.Source != "PID-7" {
					t.Fatalf("error %v, want one at %s from PID-7", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := JSON(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(tc.want)) {
				t.Errorf("%s lacks %s", b, tc.want)
			}
		})
	}
}

// PID-3's systems are Systems': a configured authority's URI, a
// placeholder URN for one not configured, none for no authority, so that
// a Patient carries the identifier its conditional update searches.
func TestPatientIdentifierSystems(t *testing.T) {
	sys := NewSystems(map[string]string{"HOSP": "https://trust.example.org/Id/mrn"})
	p, err := Patient(&avro.Patient{Identifiers: []avro.Identifier{
		{Value: "H1", AssigningAuthority: "HOSP"}, {Value: "C1", AssigningAuthority: "CLINIC"}, {Value: "X1"},
	}}, sys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://trust.example.org/Id/mrn", "urn:careflow:authority:CLINIC", ""}
	for i, id := range p.GetIdentifier() {
		if got := id.GetSystem().GetValue(); got != want[i] {
			t.Errorf("identifier %d: system %q, want %q", i, got, want[i])
		}
	}
}

// rendered checks what a resource writer returned: with errPath, an
// *Error at that element from the v2 field errSrc (and nil is returned);
// else the resource's JSON, which must hold want.
func rendered(t *testing.T, r proto.Message, err error, errPath, errSrc, want string) []byte {
	t.Helper()
	if errPath != "" {
		var fe *Error
		if !errors.As(err, &fe) || fe.Path != errPath || fe.Source != errSrc {
			t.Fatalf("error %v, want one at %s from %s", err, errPath, errSrc)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := JSON(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(want)) {
		t.Errorf("%s lacks %s", b, want)
	}
	return b
}
