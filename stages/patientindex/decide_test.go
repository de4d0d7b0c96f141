package patientindex

import (
	"testing"
	"time"
)

func id(v, auth, typ string, rep int) Identifier {
	return Identifier{Value: v, Authority: auth, Type: typ, Rep: rep}
}

// Decide, message by message over one index: the key a message gets, or
// the hold it gets instead.
func TestDecide(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	h1, h2, h3 := id("H1", "HOSP", "MR", 1), id("H2", "HOSP", "MR", 1), id("H3", "HOSP", "MR", 1)
	n1, n2 := id("9990000018", "NHS", "NH", 2), id("9990000026", "NHS", "NH", 2)
	local := id("77", "", "", 1)
	steps := []struct {
		name string
		msg  Message
		key  string // "" with hold
		hold string
	}{
		{"a new patient is keyed by the policy's identifier", Message{Interface: "ehr", Key: n1.Value + "^NHS", Identifiers: []Identifier{h1, n1}}, "9990000018^NHS", ""},
		{"a known MRN alone finds the patient", Message{Interface: "ehr", Key: "H1^HOSP", Identifiers: []Identifier{h1}}, "9990000018^NHS", ""},
		{"a second NHS number for a known MRN is held", Message{Interface: "ehr", Key: n2.Value + "^NHS", Identifiers: []Identifier{h1, n2}}, "", CodeConflict},
		{"a second MRN of one authority for a known NHS number is held", Message{Interface: "ehr", Key: n1.Value + "^NHS", Identifiers: []Identifier{h2, n1}}, "", CodeConflict},
		{"approved, it is added", Message{Interface: "ehr", Key: n1.Value + "^NHS", Identifiers: []Identifier{h2, n1}, Approved: "R1"}, "9990000018^NHS", ""},
		{"no authority: known within its interface only", Message{Interface: "clinic", Key: "77^", Identifiers: []Identifier{local}}, "77^@clinic", ""},
		{"the same number from another interface is another patient", Message{Interface: "ward", Key: "77^", Identifiers: []Identifier{local}}, "77^@ward", ""},
		{"a merge of a patient never seen is held", Message{Interface: "ehr", Key: "H3^HOSP", Kind: Merge, Identifiers: []Identifier{h3}, Other: []Identifier{id("H4", "HOSP", "MR", 1)}}, "", CodeMergeUnknown},
		{"H3 is seen", Message{Interface: "ehr", Key: "H3^HOSP", Identifiers: []Identifier{h3}}, "H3^HOSP", ""},
		{"H3 merged into the NHS patient", Message{Interface: "ehr", Key: n1.Value + "^NHS", Kind: Merge, Identifiers: []Identifier{n1}, Other: []Identifier{h3}}, "9990000018^NHS", ""},
		{"the merge again changes nothing", Message{Interface: "ehr", Key: n1.Value + "^NHS", Kind: Merge, Identifiers: []Identifier{n1}, Other: []Identifier{h3}}, "9990000018^NHS", ""},
		{"the retired MRN reaches the survivor", Message{Interface: "ehr", Key: "H3^HOSP", Identifiers: []Identifier{h3}}, "9990000018^NHS", ""},
		{"an unlink waits for a person", Message{Interface: "ehr", Key: n1.Value + "^NHS", Kind: Unlink, Identifiers: []Identifier{n1}, Other: []Identifier{h3}}, "", CodeUnlink},
		{"approved, it unmerges", Message{Interface: "ehr", Key: n1.Value + "^NHS", Kind: Unlink, Identifiers: []Identifier{n1}, Other: []Identifier{h3}, Approved: "R2"}, "9990000018^NHS", ""},
		{"the unmerged MRN is its own patient again", Message{Interface: "ehr", Key: "H3^HOSP", Identifiers: []Identifier{h3}}, "H3^HOSP", ""},
	}
	x := New()
	for i, st := range steps {
		st.msg.MessageID, st.msg.At = st.name, at.Add(time.Duration(i)*time.Minute)
		d, err := x.Decide(st.msg, nil)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		switch {
		case st.hold != "" && (d.Hold == nil || d.Hold.Code != st.hold):
			t.Errorf("%s: hold %+v, want %s", st.name, d.Hold, st.hold)
		case st.hold == "" && d.Hold != nil:
			t.Errorf("%s: held (%+v), want key %s", st.name, d.Hold, st.key)
		case st.hold == "" && d.Key != st.key:
			t.Errorf("%s: key %q, want %q", st.name, d.Key, st.key)
		case d.Hold != nil && len(d.Changes) > 0:
			t.Errorf("%s: a hold changed the index", st.name)
		}
		x.Apply(d.Changes...)
		x.Commit()
	}
	if p, _ := x.Patient("9990000018^NHS"); len(p.Identifiers) != 3 {
		t.Errorf("the patient has identifiers %v, want H1, the NHS number and H2", p.Identifiers)
	}
}

// A cycle of merges (which Decide never makes, but a hand-edited topic
// could hold) does not hang Resolve.
func TestResolveStopsOnACycle(t *testing.T) {
	x := New()
	for _, p := range []PatientEntry{{Key: "A", MergedInto: "B"}, {Key: "B", MergedInto: "A"}} {
		c, err := change(patientPrefix+p.Key, &p, nil)
		if err != nil {
			t.Fatal(err)
		}
		x.Apply(c)
	}
	x.Commit()
	if got := x.Resolve("A"); got != "A" && got != "B" {
		t.Errorf("Resolve = %q", got)
	}
}
