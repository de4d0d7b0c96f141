// This file is the console section: the operators' web console on the
// admin port (internal/console, docs/console.md).

package config

import (
	"fmt"
	"slices"
	"time"
)

// Console roles, least to most: a viewer watches the estate and traces
// messages without patient data, an operator also replays dead letters,
// decides reviews and sees patient data, an admin also sees the users and
// the audit trail.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// Roles lists the console roles, least to most.
var Roles = []string{RoleViewer, RoleOperator, RoleAdmin}

// Console configures the web console.
type Console struct {
	// UsersFile holds the console's users, one per line: name, role and
	// bcrypt hash (careflow users add writes it). Relative to this file.
	// Empty: no console, unless careflow run --demo makes one.
	UsersFile string `yaml:"users_file"`
	// PatientDataRoles may see patient data: identifiers, raw, canonical
	// and rendered messages. Every view of them is audited.
	PatientDataRoles []string `yaml:"patient_data_roles"`
	// SessionTTL is how long a login lasts without use.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// Enabled reports whether the console is served.
func (c Console) Enabled() bool { return c.UsersFile != "" }

// SeesPatientData reports whether role may see patient data.
func (c Console) SeesPatientData(role string) bool { return slices.Contains(c.PatientDataRoles, role) }

func (d *decoder) validateConsole(c Console) {
	for i, r := range c.PatientDataRoles {
		if !slices.Contains(Roles, r) {
			d.problemAt(fmt.Sprintf("console.patient_data_roles[%d]", i), fmt.Sprintf("unknown role %q: want viewer, operator or admin", r))
		}
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 7*24*time.Hour {
		d.problemAt("console.session_ttl", "must be between 1m and 168h")
	}
}
