package normalise

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/ownership"
	"github.com/careflow-health/careflow/stages/patientindex"
	"github.com/careflow-health/careflow/topics"
)

// portalA31 is an A31 from the portal changing the address and the
// telecom.
const portalA31 = "MSH|^~\\&|PORTAL|HOSP|CAREFLOW|HOSP|20240301120000||ADT^A31^ADT_A05|PU1|P|2.5.1\r" +
	"EVN|A31|20240301115500\r" +
	"PID|1||P77^^^PORTAL^PI~9434765919^^^NHS^NH||DOE^JANE||19800101|F|||9 New Road^^LEEDS^^LS9 9ZZ^GBR||07700 900123^PRN^CP\r" +
	"PV1|1|N\r"

const ehrORU = "MSH|^~\\&|EHR|HOSP|CAREFLOW|HOSP|20240301120000||ORU^R01^ORU_R01|EO1|P|2.5.1\r" +
	"PID|1||100^^^HOSP^MR||DOE^JANE\r" +
	"OBR|1|P1|F1|CBC\r" +
	"OBX|1|NM|HGB||135|g/L|||||F\r"

// ownershipStage is a stage whose matrix governs address, telecom and
// results, and, with name, the name (review).
func ownershipStage(t *testing.T, name bool) (*Stage, *avro.Serde) {
	t.Helper()
	rules := map[string]ownership.Rule{
		ownership.Address: {Owners: []string{"ehr"}, Others: ownership.Strip, Newer: true},
		ownership.Telecom: {Owners: []string{"ehr", "portal-updates"}, Others: ownership.Strip},
		ownership.Results: {Owners: []string{"lab-results"}, Others: ownership.Strip},
	}
	if name {
		rules[ownership.Name] = ownership.Rule{Owners: []string{"ehr"}, Others: ownership.Review}
	}
	m, err := ownership.New("7", rules)
	if err != nil {
		t.Fatal(err)
	}
	st, serde := newStage(t)
	st.ownership = m
	return st, serde
}

// TestProcessOwnership: what a non-owner may not change leaves the event,
// with a warning outcome naming the field; a whole-message domain
// withholds the event; a field no rule governs passes.
func TestProcessOwnership(t *testing.T) {
	tests := []struct {
		name      string
		iface     string
		payload   string
		event     bool     // an events record is written
		locations []string // of the field_not_owned outcomes, in order
		check     func(t *testing.T, ev *avro.ClinicalEvent)
	}{
		{
			name: "portal: its telecom goes on, the EHR's address does not", iface: "portal-updates", payload: portalA31,
			event: true, locations: []string{ownership.Address},
			check: func(t *testing.T, ev *avro.ClinicalEvent) {
				if len(ev.Patient.Addresses) != 0 {
					t.Errorf("addresses = %+v, want none", ev.Patient.Addresses)
				}
				if len(ev.Patient.Telecoms) != 1 || ev.Patient.Telecoms[0].Value != "07700 900123" {
					t.Errorf("telecoms = %+v, want the portal's", ev.Patient.Telecoms)
				}
				if ev.Patient.FamilyName != "DOE" {
					t.Errorf("family name = %q: a field no rule governs is delivered as sent", ev.Patient.FamilyName)
				}
			},
		},
		{
			name: "the EHR owns all three", iface: "ehr", payload: portalA31, event: true,
			check: func(t *testing.T, ev *avro.ClinicalEvent) {
				if len(ev.Patient.Addresses) != 1 || len(ev.Patient.Telecoms) != 1 {
					t.Errorf("owner's update changed: %+v", ev.Patient)
				}
			},
		},
		{name: "a result from the EHR is withheld", iface: "ehr", payload: ehrORU, locations: []string{ownership.Results}},
		{name: "a result from the lab", iface: "lab-results", payload: ehrORU, event: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, serde := ownershipStage(t, false)
			raw := rawFor([]byte(tc.payload))
			raw.Interface = tc.iface
			outs, err := st.Process(context.Background(), envelopeFor(t, serde, raw))
			if err != nil {
				t.Fatal(err)
			}
			var locations []string
			events := 0
			for _, o := range outs {
				switch o.Topic {
				case topics.Events:
					events++
					var ev avro.ClinicalEvent
					if err := serde.Decode(o.Value, &ev); err != nil {
						t.Fatal(err)
					}
					if tc.check != nil {
						tc.check(t, &ev)
					}
				case topics.Outcomes:
					var oc avro.DeliveryOutcome
					if err := serde.Decode(o.Value, &oc); err != nil {
						t.Fatal(err)
					}
					if oc.Status != avro.StatusWarning || oc.ErrorCode != CodeFieldNotOwned || oc.Stage != topics.StageNormalise {
						t.Errorf("outcome %s/%s/%s, want warning field_not_owned at normalise", oc.Status, oc.ErrorCode, oc.Stage)
					}
					if want := "msg-1/normalise/warning/field_not_owned/" + oc.ErrorLocation; oc.OutcomeID != want {
						t.Errorf("outcome id %q, want %q", oc.OutcomeID, want)
					}
					for _, secret := range []string{"New Road", "LS9", "07700", "DOE", "9434765919", "135"} {
						if strings.Contains(oc.ErrorText, secret) {
							t.Errorf("outcome text %q holds patient data %q", oc.ErrorText, secret)
						}
					}
					if !strings.Contains(oc.ErrorText, "version 7") || !strings.Contains(oc.ErrorText, tc.iface) {
						t.Errorf("outcome text %q does not name the version and the sender", oc.ErrorText)
					}
					locations = append(locations, oc.ErrorLocation)
				default:
					t.Errorf("unexpected record on %s", o.Topic)
				}
			}
			if want := map[bool]int{true: 1}[tc.event]; events != want {
				t.Errorf("%d events records, want %d", events, want)
			}
			if strings.Join(locations, ",") != strings.Join(tc.locations, ",") {
				t.Errorf("field_not_owned at %v, want %v", locations, tc.locations)
			}
		})
	}
}

// TestApplyOwnershipNewer: with the patient's state, an owner's update no
// newer than the last applied address loses the address (field_not_newer)
// and what it applied is returned to remember; review names the review
// fields.
func TestApplyOwnershipNewer(t *testing.T) {
	st, serde := ownershipStage(t, true)
	raw := rawFor([]byte(portalA31))
	tests := []struct {
		name       string
		iface      string
		last       time.Time
		codes      []string
		wantReview []string
		applied    []string
	}{
		{"older than the last address", "ehr", time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), []string{CodeFieldNotNewer}, nil, []string{ownership.Telecom, ownership.Name}},
		{"newer than the last address", "ehr", time.Date(2024, 3, 1, 11, 0, 0, 0, time.UTC), nil, nil, []string{ownership.Address, ownership.Telecom, ownership.Name}},
		{"a non-owner of name, address and telecom", "lab-results", time.Time{}, []string{CodeFieldNotOwned, CodeFieldNotOwned}, []string{ownership.Name}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := mapFixtureText(t, portalA31, tc.iface)
			if err != nil {
				t.Fatal(err)
			}
			raw.Interface = tc.iface
			outs, d, err := st.applyOwnership(ev, raw, []byte("k"), stages.Headers{}, testNow, lastAddress(tc.last))
			review, applied := d.Review, d.Applied
			if err != nil {
				t.Fatal(err)
			}
			var codes []string
			for _, o := range outs[1:] {
				var oc avro.DeliveryOutcome
				if err := serde.Decode(o.Value, &oc); err != nil {
					t.Fatal(err)
				}
				codes = append(codes, oc.ErrorCode)
			}
			if strings.Join(codes, ",") != strings.Join(tc.codes, ",") {
				t.Errorf("outcome codes %v, want %v", codes, tc.codes)
			}
			if strings.Join(review, ",") != strings.Join(tc.wantReview, ",") {
				t.Errorf("review %v, want %v", review, tc.wantReview)
			}
			if len(applied) != len(tc.applied) {
				t.Errorf("applied %v, want %v", applied, tc.applied)
			}
			for _, f := range tc.applied {
				if at, ok := applied[f]; !ok || !at.Equal(time.Date(2024, 3, 1, 11, 55, 0, 0, time.UTC)) {
					t.Errorf("applied[%s] = %v, %v; want the EVN-2 time", f, at, ok)
				}
			}
		})
	}
}

func mapFixtureText(t *testing.T, text, iface string) (*avro.ClinicalEvent, error) {
	t.Helper()
	raw := rawFor([]byte(text))
	raw.Interface = iface
	m, err := parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return Map(m, raw)
}

// lastAddress knows the address was last applied at t (none when zero).
type lastAddress time.Time

func (l lastAddress) Last(f string) (time.Time, bool) {
	return time.Time(l), f == ownership.Address && !time.Time(l).IsZero()
}
func (lastAddress) Fingerprint(string) (string, bool) { return "", false }

// TestProcessOwnershipReview: a non-owner's update of a review field is
// held for a person (careflow.review, an exception with action held),
// unless it repeats what the patient's record already says (the index
// remembers a fingerprint of the value the owner gave) or a person
// approved it.
func TestProcessOwnershipReview(t *testing.T) {
	m, err := ownership.New("8", map[string]ownership.Rule{
		ownership.Name: {Owners: []string{"ehr"}, Others: ownership.Review},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, serde := newStage(t)
	st.ownership, st.index = m, patientindex.New()
	process := func(iface, payload, reviewID string, code ...string) []string {
		t.Helper()
		raw := rawFor([]byte(payload))
		raw.Interface, raw.MessageID = iface, "m-"+iface+reviewID
		env := envelopeFor(t, serde, raw)
		if reviewID != "" {
			env.Headers.Set(topics.HeaderReviewID, reviewID)
			env.Headers.Set(topics.HeaderReviewCode, append(code, CodeFieldReview)[0])
		}
		outs, err := st.Process(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		st.index.Commit()
		var got []string
		for _, o := range outs {
			if o.Topic != topics.Patients {
				got = append(got, o.Topic)
			}
		}
		return got
	}
	ehr := strings.Replace(portalA31, "PORTAL|HOSP", "EHR|HOSP", 1)
	renamed := strings.Replace(portalA31, "DOE^JANE", "DOE^JAYNE", 1)
	for _, tc := range []struct {
		name, iface, payload, review string
		want                         string
	}{
		{"the owner sets the name", "ehr", ehr, "", topics.Events},
		{"the portal repeats it: passes", "portal-updates", portalA31, "", topics.Events},
		{"the portal changes it: held", "portal-updates", renamed, "", topics.Review + " " + topics.Exceptions},
		{"approved: passes", "portal-updates", renamed, "R1", topics.Events},
	} {
		if got := strings.Join(process(tc.iface, tc.payload, tc.review), " "); got != tc.want {
			t.Errorf("%s: wrote %q, want %q", tc.name, got, tc.want)
		}
	}
	// An approval of another hold (a code map's) does not pass this one.
	renamed = strings.Replace(renamed, "DOE^JAYNE", "DOE^JEAN", 1)
	if got := strings.Join(process("portal-updates", renamed, "R2", CodeUnmappedCode), " "); got != topics.Review+" "+topics.Exceptions {
		t.Errorf("approved for unmapped_code: wrote %q, want it held for field_review", got)
	}
}
