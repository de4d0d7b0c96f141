package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConsoleDefaultsAndValues(t *testing.T) {
	c, err := Parse("t.yaml", []byte(analyticsBase), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if c.Console.Enabled() || c.Console.SessionTTL != 8*time.Hour || !c.Console.SeesPatientData(RoleOperator) ||
		!c.Console.SeesPatientData(RoleAdmin) || c.Console.SeesPatientData(RoleViewer) {
		t.Errorf("defaults = %+v; want off, 8h, operators and admins see patient data", c.Console)
	}
	c, err = Parse("dir/t.yaml", []byte(analyticsBase+`console:
  users_file: console-users
  patient_data_roles: [admin]
  session_ttl: 30m
`), WithLookupEnv(noEnv))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Console.Enabled() || c.Console.UsersFile != filepath.Join("dir", "console-users") || c.Console.SessionTTL != 30*time.Minute ||
		c.Console.SeesPatientData(RoleOperator) || !c.Console.SeesPatientData(RoleAdmin) {
		t.Errorf("console = %+v; want on, the file beside the configuration, 30m, admins only", c.Console)
	}
}

func TestConsoleProblems(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown role", "console: {patient_data_roles: [operator, clinician]}", `t.yaml:3: console.patient_data_roles[1]: unknown role "clinician": want viewer, operator or admin`},
		{"short session", "console: {session_ttl: 10s}", "t.yaml:3: console.session_ttl: must be between 1m and 168h"},
		{"long session", "console: {session_ttl: 720h}", "t.yaml:3: console.session_ttl: must be between 1m and 168h"},
		{"unknown key", "console: {users: x}", "t.yaml:3: console.users: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(analyticsBase+tc.yaml+"\n"), WithLookupEnv(noEnv))
			var ps Problems
			if !errors.As(err, &ps) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error =\n%v\nwant it to contain\n%s", err, tc.want)
			}
		})
	}
}
