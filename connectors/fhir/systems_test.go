package fhir

import "testing"

func TestSystems(t *testing.T) {
	s := NewSystems(map[string]string{"HOSP": "https://trust.example.org/Id/mrn"})
	var zero *Systems
	tests := []struct {
		name, authority, uri string
		sys                  *Systems
	}{
		{"default NHS", "NHS", "https://fhir.nhs.uk/Id/nhs-number", s},
		{"zero value knows the defaults", "NHS", "https://fhir.nhs.uk/Id/nhs-number", zero},
		{"configured", "HOSP", "https://trust.example.org/Id/mrn", s},
		{"unconfigured: placeholder", "CLINIC", "urn:careflow:authority:CLINIC", s},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sys.SearchURI(tc.authority); got != tc.uri {
				t.Errorf("SearchURI(%q) = %q, want %q", tc.authority, got, tc.uri)
			}
			if got := tc.sys.Authority(tc.uri); got != tc.authority {
				t.Errorf("Authority(%q) = %q, want %q", tc.uri, got, tc.authority)
			}
		})
	}
	if got := s.Authority("urn:oid:2.16.840.1.113883.2.1.4.1"); got != "2.16.840.1.113883.2.1.4.1" {
		t.Errorf("an OID system's authority is %q", got)
	}
	if got := s.Authority("http://other.example/ids"); got != "http://other.example/ids" {
		t.Errorf("an unknown system's authority is %q, want the URI", got)
	}
	if got := s.SearchURI(""); got != "" {
		t.Errorf("no authority: %q", got)
	}
}
