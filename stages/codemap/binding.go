// This file says where a map applies: which interfaces, fields and local
// systems, and what becomes of a code it does not know.

package codemap

import (
	"slices"
	"strings"
)

// Binding is a Map with where it applies, as one `codes:` entry of the
// configuration says.
type Binding struct {
	Map *Map
	// Interfaces are the inbound interfaces it applies to; empty: all.
	Interfaces []string
	// Fields are the coded fields it applies to (FieldOBX3, ...).
	Fields []string
	// Systems are the local coding systems it applies to (L, 99LAB);
	// empty: any code whose system is not one the map codes into.
	Systems []string
	// Hold says an unmapped code holds the message for review; false
	// passes it on as sent. Either way it is an exception.
	Hold bool
}

// AppliesTo reports whether b applies to field of messages from iface.
func (b *Binding) AppliesTo(iface, field string) bool {
	return slices.Contains(b.Fields, field) && (len(b.Interfaces) == 0 || slices.Contains(b.Interfaces, iface))
}

// Takes reports whether a code in system is one b translates: one of its
// Systems, or, when it lists none, any system the map does not code into.
func (b *Binding) Takes(system string) bool {
	if len(b.Systems) == 0 {
		return !b.Map.IsTarget(system)
	}
	return slices.ContainsFunc(b.Systems, func(s string) bool { return strings.EqualFold(s, system) })
}
