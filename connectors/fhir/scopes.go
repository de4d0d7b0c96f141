// This file reads SMART on FHIR scopes (SMART App Launch 1.0's
// "system/Observation.write" and 2.0's "system/Observation.cu"), to say
// whether a token may make a write.

package fhir

import "strings"

// ScopeAllows reports whether scopes grant interaction ("create",
// "update" or "read") on resource type typ: a system/ or user/ scope
// naming typ or *, with write (read for a read) or * (SMART 1), or the
// interaction's letter (c, u, r) among cruds (SMART 2). patient/ scopes
// are not enough: careflow does not confine a write to one patient's
// compartment. Nor is a SMART 2 scope with a query
// (system/Observation.c?category=laboratory): careflow does not check the
// query, and must not widen the grant to every resource of the type.
func ScopeAllows(scopes []string, typ, interaction string) bool {
	letter, v1 := "c", "write"
	switch interaction {
	case "update":
		letter = "u"
	case "read":
		letter, v1 = "r", "read"
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
		if strings.Contains(perm, "?") {
			continue
		}
		switch {
		case perm == v1 || perm == "*":
			return true
		case perm != "" && strings.Trim(perm, "cruds") == "" && strings.Contains(perm, letter):
			return true
		}
	}
	return false
}

// Scope is the SMART 1 scope interaction on typ needs, for error
// messages: system/Observation.write, or .read for a read.
func Scope(typ, interaction string) string {
	if interaction == "read" {
		return "system/" + typ + ".read"
	}
	return "system/" + typ + ".write"
}
