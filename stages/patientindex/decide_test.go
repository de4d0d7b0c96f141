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
	h5, h6, n5 := id("H5", "HOSP", "MR", 1), id("H6", "HOSP", "MR", 1), id("9990000042", "NHS", "NH", 2)
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
		{"an approval of another hold is not this one's", Message{Interface: "ehr", Key: n1.Value + "^NHS", Identifiers: []Identifier{h2, n1}, Approved: "R0", ApprovedCode: CodeUnlink}, "", CodeConflict},
		{"approved, it is added", Message{Interface: "ehr", Key: n1.Value + "^NHS", Identifiers: []Identifier{h2, n1}, Approved: "R1", ApprovedCode: CodeConflict}, "9990000018^NHS", ""},
		{"no authority: known within its interface only", Message{Interface: "clinic", Key: "77^", Identifiers: []Identifier{local}}, "77^@clinic", ""},
		{"the same number from another interface is another patient", Message{Interface: "ward", Key: "77^", Identifiers: []Identifier{local}}, "77^@ward", ""},
		{"a merge of a patient never seen is held", Message{Interface: "ehr", Key: "H3^HOSP", Kind: Merge, Identifiers: []Identifier{h3}, Other: []Identifier{id("H4", "HOSP", "MR", 1)}}, "", CodeMergeUnknown},
		{"H3 is seen", Message{Interface: "ehr", Key: "H3^HOSP", Identifiers: []Identifier{h3}}, "H3^HOSP", ""},
		{"H3 merged into the NHS patient", Message{Interface: "ehr", Key: n1.Value + "^NHS", Kind: Merge, Identifiers: []Identifier{n1}, Other: []Identifier{h3}}, "9990000018^NHS", ""},
		{"the merge again changes nothing", Message{Interface: "ehr", Key: n1.Value + "^NHS", Kind: Merge, Identifiers: []Identifier{n1}, Other: []Identifier{h3}}, "9990000018^NHS", ""},
		{"the retired MRN reaches the survivor", Message{Interface: "ehr", Key: "H3^HOSP", Identifiers: []Identifier{h3}}, "9990000018^NHS", ""},
		{"an unlink waits for a person", Message{Interface: "ehr", Key: n1.Value + "^NHS", Kind: Unlink, Identifiers: []Identifier{n1}, Other: []Identifier{h3}}, "", CodeUnlink},
		{"approved, it unmerges", Message{Interface: "ehr", Key: n1.Value + "^NHS", Kind: Unlink, Identifiers: []Identifier{n1}, Other: []Identifier{h3}, Approved: "R2", ApprovedCode: CodeUnlink}, "9990000018^NHS", ""},
		{"the unmerged MRN is its own patient again", Message{Interface: "ehr", Key: "H3^HOSP", Identifiers: []Identifier{h3}}, "H3^HOSP", ""},
		// The survivor's whole list in PID-3, which names the NHS number
		// of the patient being retired: a merge, not a conflict.
		{"H5 with N5 is seen", Message{Interface: "ehr", Key: n5.Value + "^NHS", Identifiers: []Identifier{h5, n5}}, n5.Value + "^NHS", ""},
		{"H6 is seen", Message{Interface: "ehr", Key: "H6^HOSP", Identifiers: []Identifier{h6}}, "H6^HOSP", ""},
		{"H5 merged into H6, PID-3 H6~N5", Message{Interface: "ehr", Key: n5.Value + "^NHS", Kind: Merge, Identifiers: []Identifier{h6, n5}, Other: []Identifier{h5}}, "H6^HOSP", ""},
		{"the survivor has N5 now: another NHS number is held", Message{Interface: "ehr", Key: "9990000034^NHS", Identifiers: []Identifier{h6, id("9990000034", "NHS", "NH", 2)}}, "", CodeConflict},
		{"so is one sent without its type", Message{Interface: "lab", Key: "H6^HOSP", Identifiers: []Identifier{h6, id("9990000034", "NHS", "", 2)}}, "", CodeConflict},
		{"an authority is one whatever its case", Message{Interface: "lab", Key: "H6^hosp", Identifiers: []Identifier{id("H6", "hosp", "MR", 1)}}, "H6^HOSP", ""},
		{"a link without a second patient is held", Message{Interface: "ehr", Key: "H6^HOSP", Kind: Link, Identifiers: []Identifier{h6}}, "", CodeConflict},
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

// What the index hands out is a copy: a caller (Decide's working copy)
// changing it changes nothing committed, whether the entry came from its
// JSON or from the decoded cache.
func TestReadsAreCopies(t *testing.T) {
	x := New()
	d, err := x.Decide(Message{Interface: "ehr", Key: "H1^HOSP", Identifiers: []Identifier{id("H1", "HOSP", "MR", 1)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	x.Apply(d.Changes...)
	x.Commit()
	for range 2 { // the first read after the commit, then the cached one
		p, _ := x.Patient("H1^HOSP")
		p.Identifiers[0], p.MergedInto = "X^HOSP", "Y"
		e, _ := x.Identifier("H1^HOSP")
		e.Patient = "Y"
	}
	if p, _ := x.Patient("H1^HOSP"); p.Identifiers[0] != "H1^HOSP" || p.MergedInto != "" {
		t.Errorf("committed patient changed through a read: %+v", p)
	}
	if e, _ := x.Identifier("H1^HOSP"); e.Patient != "H1^HOSP" {
		t.Errorf("committed identifier changed through a read: %+v", e)
	}
}
