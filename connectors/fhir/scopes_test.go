package fhir

import (
	"strings"
	"testing"
)

func TestScopeAllows(t *testing.T) {
	tests := []struct {
		scopes, typ, interaction string
		want                     bool
	}{
		{"system/Observation.write", "Observation", "create", true},
		{"system/Observation.write", "Patient", "create", false},
		{"system/*.write", "Patient", "update", true},
		{"system/Observation.*", "Observation", "update", true},
		{"user/Observation.write", "Observation", "create", true},
		{"patient/Observation.write", "Observation", "create", false},
		{"system/Observation.read", "Observation", "create", false},
		{"system/Observation.c", "Observation", "create", true},
		{"system/Observation.c", "Observation", "update", false},
		{"system/Observation.cu", "Observation", "update", true},
		{"system/Observation.cruds", "Observation", "update", true},
		{"system/Observation.rs", "Observation", "create", false},
		{"system/Observation.c?category=laboratory", "Observation", "create", false},
		{"system/Observation.read", "Observation", "read", true},
		{"system/Observation.write", "Observation", "read", false},
		{"system/Observation.rs", "Observation", "read", true},
		{"system/*.*", "Patient", "read", true},
		{"system/Observation.cx", "Observation", "create", false},
		{"careflow/apps.write openid", "Observation", "create", false},
		{"", "Observation", "create", false},
	}
	for _, tc := range tests {
		if got := ScopeAllows(strings.Fields(tc.scopes), tc.typ, tc.interaction); got != tc.want {
			t.Errorf("ScopeAllows(%q, %s, %s) = %v, want %v", tc.scopes, tc.typ, tc.interaction, got, tc.want)
		}
	}
}
