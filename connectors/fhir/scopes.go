// This file reads SMART on FHIR scopes (SMART App Launch 1.0's
// "system/Observation.write" and 2.0's "system/Observation.cu"), to say
// whether a token may make a write.

package fhir

import "strings"

// ScopeAllows reports whether scopes grant interaction ("create" or
// "update") on resource type typ: a system/ or user/ scope naming typ or
// *, with write or * (SMART 1) or the interaction's letter c or u among
// cruds (SMART 2). patient/ scopes are not enough: careflow does not
// confine a write to one patient's compartment.
func ScopeAllows(scopes []string, typ, interaction string) bool {
	letter := "c"
	if interaction == "update" {
		letter = "u"
	}
	for _, sc := range scopes {
		ctx, rest, ok := strings.Cut(sc, "/")
		if !ok || (ctx != "system" && ctx != "user") {
			continue
		}
		rt, perm, ok := strings.Cut(rest, ".")
		if !ok || (rt != typ && rt != "*") {
			continue
		}
		perm, _, _ = strings.Cut(perm, "?") // SMART 2 finer-grained query: the type still matches
		switch {
		case perm == "write" || perm == "*":
			return true
		case perm != "" && strings.Trim(perm, "cruds") == "" && strings.Contains(perm, letter):
			return true
		}
	}
	return false
}

// Scope is the SMART 1 scope a write of typ needs, for error messages.
func Scope(typ string) string { return "system/" + typ + ".write" }
