// This file applies merges, links and unlinks to the working copy.

package patientindex

import "slices"

// merge merges the patients msg.Other names into target. A retired
// identifier careflow has never seen is held for review unless the merge
// also names one it knows, or a person approved it: then it is recorded
// as a patient merged into target, so that a late message for it still
// reaches the survivor.
func (d *decision) merge(target string) *Hold {
	var unknown []Identifier
	var retired []string
	for _, id := range d.msg.Other {
		e := d.identifier(id.ID())
		if e == nil {
			unknown = append(unknown, id)
			continue
		}
		if p := d.resolve(e.Patient); p != target && !slices.Contains(retired, p) {
			retired = append(retired, p)
		}
	}
	if len(retired) == 0 && len(unknown) > 0 && !d.approved(CodeMergeUnknown) {
		// Also the merge that overtook the patient it retires.
		return &Hold{Code: CodeMergeUnknown, Location: "MRG-1",
			Reason: "the merge retires a patient careflow has never seen: a person confirms it, or waits for the patient's own messages"}
	}
	tp := d.patient(target)
	for _, id := range unknown {
		p := &PatientEntry{Key: id.ID(), Identifiers: []string{id.ID()}, MergedInto: target}
		p.record(d.event("merged_into", target))
		d.touch(p)
		d.touch(&IdentifierEntry{Identifier: id, Patient: p.Key, Sources: []Seen{{Interface: d.msg.Interface, First: d.msg.At, Last: d.msg.At}}})
		tp.record(d.event("merged", p.Key))
		tp.adopt([]string{id.ID()})
	}
	for _, key := range retired {
		p := d.patient(key)
		if p == nil {
			p = &PatientEntry{Key: key}
		}
		p.MergedInto = target
		p.record(d.event("merged_into", target))
		d.touch(p)
		tp.record(d.event("merged", key))
		tp.adopt(p.Identifiers)
	}
	d.touch(tp)
	for _, id := range d.msg.Other {
		d.seen(id)
	}
	return nil
}

// adopt lists ids (a merged patient's) among p's: its identifiers are
// then the survivor's, for the one-per-kind rule and for careflow
// patients show. Their entries still name the retired patient, which
// resolves to p.
func (p *PatientEntry) adopt(ids []string) {
	for _, id := range ids {
		if !slices.Contains(p.Identifiers, id) {
			p.Identifiers = append(p.Identifiers, id)
		}
	}
}

// link records that target and the second PID's patient are one person's
// records, kept apart (A24). A second PID whose identifiers conflict is
// held, like any.
func (d *decision) link(target string) *Hold {
	other, hold := d.patientOf(d.msg.Other, "PID-3", nil)
	if hold != nil {
		hold.Reason = "the second PID: " + hold.Reason
		return hold
	}
	if other == target {
		return nil
	}
	tp, op := d.patient(target), d.patient(other)
	if tp == nil || op == nil || slices.Contains(tp.Links, other) {
		return nil
	}
	tp.Links = append(tp.Links, other)
	op.Links = append(op.Links, target)
	tp.record(d.event("linked", other))
	op.record(d.event("linked", target))
	d.touch(tp)
	d.touch(op)
	return nil
}

// unlink undoes a link between target and the second PID's patient, or
// the merge of one into the other (A37, approved by a person).
func (d *decision) unlink(target string) {
	for _, id := range d.msg.Other {
		e := d.identifier(id.ID())
		if e == nil {
			continue
		}
		op := d.patient(e.Patient)
		tp := d.patient(target)
		if op == nil || tp == nil || op.Key == tp.Key {
			continue
		}
		if op.MergedInto != "" && d.resolve(op.Key) == target {
			op.MergedInto = ""
			tp.Identifiers = slices.DeleteFunc(tp.Identifiers, func(s string) bool { return slices.Contains(op.Identifiers, s) })
			op.record(d.event("unmerged", target))
			tp.record(d.event("unmerged", op.Key))
		}
		if slices.Contains(tp.Links, op.Key) || slices.Contains(op.Links, tp.Key) {
			tp.Links = slices.DeleteFunc(tp.Links, func(s string) bool { return s == op.Key })
			op.Links = slices.DeleteFunc(op.Links, func(s string) bool { return s == tp.Key })
			tp.record(d.event("unlinked", op.Key))
			op.record(d.event("unlinked", tp.Key))
		}
		d.touch(op)
		d.touch(tp)
	}
}
