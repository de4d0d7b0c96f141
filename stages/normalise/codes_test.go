package normalise

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/codemap"
	"github.com/careflow-health/careflow/topics"
)

func loadMap(t *testing.T, file, name, version string) *codemap.Map {
	t.Helper()
	m, err := codemap.Load(filepath.Join("testdata", file), name, version)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// oruWith is a lab result with the given OBR-4 and OBX
// segments' fields 3 and 6.
func oruWith(obr4 string, obx ...[2]string) []byte {
	msg := "MSH|^~\\&|LAB|HOSP|CF|HOSP|20240301120000||ORU^R01|C1|P|2.5.1\rPID|1||M1^^^HOSP^MR||DOE^JANE\r" +
		"OBR|1|RP1^EHR|F1^LAB|" + obr4 + "\r"
	for i, o := range obx {
		msg += "OBX|" + string(rune('1'+i)) + "|NM|" + o[0] + "||5|" + o[1] + "||||F\r"
	}
	return []byte(msg)
}

// Code maps replace a local code by the standard one and keep the local
// one as the alternate; a code no map knows raises unmapped_code once per
// message and passes (or, by the map's policy, asks to be held).
func TestMapCodes(t *testing.T) {
	loinc := loadMap(t, "lab-codes.csv", "lab-loinc", "3")
	ucum := loadMap(t, "lab-units.csv", "lab-ucum", "2024-06")
	type want struct {
		obr4     string
		obx      []string // OBX-3 as code^text^system^alt^alttext^altsystem, one per OBX
		units    []string
		unmapped []string // location:system:code of each exception
		held     bool
		maps     []string
	}
	tests := []struct {
		name  string
		iface string
		codes []codemap.Binding
		msg   []byte
		want  want
	}{
		{
			name: "mapped and unmapped OBX-3", iface: "lab-results",
			codes: []codemap.Binding{{Map: loinc, Fields: []string{codemap.FieldOBX3}, Systems: []string{"L"}}},
			msg:   oruWith("CHEM^Chem panel^L", [2]string{"GLU^Glucose^L", "mmol/L"}, [2]string{"XYZ^Mystery^L", ""}, [2]string{"XYZ^Mystery^L", ""}),
			want: want{obr4: "CHEM^Chem panel^L^^^",
				obx:      []string{"2345-7^Glucose [Mass/volume] in Serum or Plasma^LN^GLU^Glucose^L", "XYZ^Mystery^L^^^", "XYZ^Mystery^L^^^"},
				units:    []string{"mmol/L^^^^^", "^^^^^", "^^^^^"},
				unmapped: []string{"OBX-3:L:XYZ"}, maps: []string{"lab-loinc@3"}},
		},
		{
			name: "OBR-4 and units, held", iface: "lab-results",
			codes: []codemap.Binding{
				{Map: loinc, Fields: []string{codemap.FieldOBR4, codemap.FieldOBX3}, Hold: true},
				{Map: ucum, Fields: []string{codemap.FieldOBX6}},
			},
			msg: oruWith("CHEM^Chem panel^L", [2]string{"2951-2^Sodium^LN", "MMOL^^L"}, [2]string{"K^Potassium^L", "MMOL"}),
			want: want{obr4: "24323-8^Chem panel^LN^CHEM^Chem panel^L",
				obx:      []string{"2951-2^Sodium^LN^^^", "K^Potassium^L^^^"},
				units:    []string{"mmol/L^millimole per liter^UCUM^MMOL^^L", "mmol/L^millimole per liter^UCUM^MMOL^^"},
				unmapped: []string{"OBX-3:L:K"}, held: true, maps: []string{"lab-loinc@3", "lab-ucum@2024-06"}},
		},
		{
			name: "the sender's alternate is already LOINC", iface: "lab-results",
			codes: []codemap.Binding{{Map: loinc, Fields: []string{codemap.FieldOBX3}}},
			msg:   oruWith("", [2]string{"K^Potassium^L^2823-3^Potassium^LN", ""}),
			want:  want{obr4: "^^^^^", obx: []string{"2823-3^Potassium^LN^K^Potassium^L"}, units: []string{"^^^^^"}, maps: []string{"lab-loinc@3"}},
		},
		{
			name: "another interface", iface: "ehr",
			codes: []codemap.Binding{{Map: loinc, Fields: []string{codemap.FieldOBX3}, Interfaces: []string{"lab-results"}}},
			msg:   oruWith("", [2]string{"GLU^Glucose^L", ""}),
			want:  want{obr4: "^^^^^", obx: []string{"GLU^Glucose^L^^^"}, units: []string{"^^^^^"}},
		},
		{
			name: "another local system", iface: "lab-results",
			codes: []codemap.Binding{{Map: loinc, Fields: []string{codemap.FieldOBX3}, Systems: []string{"99LAB"}}},
			msg:   oruWith("", [2]string{"GLU^Glucose^L", ""}),
			want:  want{obr4: "^^^^^", obx: []string{"GLU^Glucose^L^^^"}, units: []string{"^^^^^"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			serde, err := avro.NewSerde(context.Background(), testRegistry(t))
			if err != nil {
				t.Fatal(err)
			}
			st, err := New(Config{Serde: serde, Now: func() time.Time { return testNow }, Codes: tt.codes, Metrics: reg})
			if err != nil {
				t.Fatal(err)
			}
			raw := rawFor(tt.msg)
			raw.Interface = tt.iface
			raw.ControlID = "C1"
			in := envelopeFor(t, serde, raw)
			m, err := parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Map(m, raw)
			if err != nil {
				t.Fatal(err)
			}
			excs, hold, err := st.mapCodes(context.Background(), ev, raw, in.Key, in.Headers, testNow)
			if err != nil {
				t.Fatal(err)
			}
			o := ev.Orders[0]
			if got := strings.Join([]string{o.ServiceCode, o.ServiceText, o.ServiceSystem, o.ServiceAltCode, o.ServiceAltText, o.ServiceAltSystem}, "^"); got != tt.want.obr4 {
				t.Errorf("OBR-4 = %s, want %s", got, tt.want.obr4)
			}
			var obx, units []string
			for _, x := range ev.Observations {
				obx = append(obx, strings.Join([]string{x.Code, x.Text, x.CodingSystem, x.AltCode, x.AltText, x.AltCodingSystem}, "^"))
				units = append(units, strings.Join([]string{x.Units, x.UnitsText, x.UnitsSystem, x.UnitsAltCode, x.UnitsAltText, x.UnitsAltSystem}, "^"))
			}
			if !slices.Equal(obx, tt.want.obx) || !slices.Equal(units, tt.want.units) {
				t.Errorf("OBX-3 %q\nwant   %q\nOBX-6 %q\nwant   %q", obx, tt.want.obx, units, tt.want.units)
			}
			if !slices.Equal(ev.Provenance.CodeMaps, tt.want.maps) {
				t.Errorf("code_maps %v, want %v", ev.Provenance.CodeMaps, tt.want.maps)
			}
			var got []string
			for _, e := range excs {
				var x avro.Exception
				if e.Topic != topics.Exceptions || serde.Decode(e.Value, &x) != nil {
					t.Fatalf("not an exception on %s", e.Topic)
				}
				got = append(got, x.Location+":"+x.CodingSystem+":"+x.CodedValue)
				action := avro.ActionDelivered
				if tt.want.held {
					action = avro.ActionHeld
				}
				if x.Code != CodeUnmappedCode || x.Interface != tt.iface || x.Action != action || x.PlacerOrder != "RP1^EHR" ||
					x.ControlID != "C1" || !strings.Contains(x.Reason, "lab-loinc (version 3)") || strings.Contains(x.Reason, "DOE") {
					t.Errorf("exception %+v", x)
				}
			}
			if !slices.Equal(got, tt.want.unmapped) {
				t.Errorf("unmapped %v, want %v", got, tt.want.unmapped)
			}
			if tt.want.held != (len(hold) > 0) {
				t.Errorf("hold %q, want held %v", hold, tt.want.held)
			}
			if n := testutil.ToFloat64(st.unmappedCodes.WithLabelValues("lab-loinc", tt.iface)); int(n) != len(tt.want.unmapped) {
				t.Errorf("careflow_unmapped_codes_total = %v, want %d", n, len(tt.want.unmapped))
			}
			if n := testutil.ToFloat64(st.exceptions.WithLabelValues(CodeUnmappedCode)); int(n) != len(tt.want.unmapped) {
				t.Errorf("careflow_exceptions_total{unmapped_code} = %v, want %d", n, len(tt.want.unmapped))
			}
		})
	}
}

// Process writes the mapped event and the exceptions beside it; under
// unmapped: hold the message is held for review instead (the item, and
// the exception naming it), and goes on once a person approved it.
func TestProcessMapsCodes(t *testing.T) {
	serde, err := avro.NewSerde(context.Background(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		hold     bool
		approved string
		want     string // the output topics
	}{
		{"pass", false, "", topics.Events + " " + topics.Exceptions},
		{"hold", true, "", topics.Review + " " + topics.Exceptions},
		{"hold, approved", true, "R1", topics.Events + " " + topics.Exceptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := New(Config{Serde: serde, Now: func() time.Time { return testNow },
				Codes: []codemap.Binding{{Map: loadMap(t, "lab-codes.csv", "lab-loinc", "3"), Fields: []string{codemap.FieldOBX3}, Hold: tc.hold}}})
			if err != nil {
				t.Fatal(err)
			}
			env := envelopeFor(t, serde, rawFor(oruWith("", [2]string{"GLU^Glucose^L", ""}, [2]string{"XYZ^Mystery^L", ""})))
			if tc.approved != "" {
				env.Headers.Set(topics.HeaderReviewID, tc.approved)
				env.Headers.Set(topics.HeaderReviewCode, CodeUnmappedCode)
			}
			outs, err := st.Process(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range outs {
				got = append(got, o.Topic)
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("outputs %v, want %s", got, tc.want)
			}
			var x avro.Exception
			if err := serde.Decode(outs[1].Value, &x); err != nil {
				t.Fatal(err)
			}
			if tc.hold && tc.approved == "" {
				var item avro.Review
				if err := serde.Decode(outs[0].Value, &item); err != nil {
					t.Fatal(err)
				}
				if item.Code != CodeUnmappedCode || item.Status != avro.ReviewPending || item.Location != "OBX-3" || x.ReviewID != item.ReviewID || x.Action != avro.ActionHeld {
					t.Errorf("item %s %s %s, exception review %q action %s", item.ReviewID, item.Code, item.Status, x.ReviewID, x.Action)
				}
				return
			}
			var ev avro.ClinicalEvent
			if err := serde.Decode(outs[0].Value, &ev); err != nil {
				t.Fatal(err)
			}
			if o := ev.Observations[0]; o.Code != "2345-7" || o.AltCode != "GLU" || !slices.Equal(ev.Provenance.CodeMaps, []string{"lab-loinc@3"}) {
				t.Errorf("event %+v, code maps %v", o, ev.Provenance.CodeMaps)
			}
		})
	}
}

// An allergen's local code (AL1-3) maps like an observation's: SNOMED CT
// first, the local code as the alternate; an unknown one raises
// unmapped_code at AL1-3.
func TestMapAllergenCode(t *testing.T) {
	m, err := codemap.Parse(strings.NewReader("local_system,local_code,code,display,system\nL,PEN,764146007,Penicillin,SCT\n"), "allergens.csv", "allergens", "1")
	if err != nil {
		t.Fatal(err)
	}
	st, serde := newStage(t)
	st.codes = []codemap.Binding{{Map: m, Fields: []string{codemap.FieldAL13}}}
	msg := "MSH|^~\\&|EHR|HOSP|CAREFLOW|HOSP|20240301120000||ADT^A08^ADT_A01|AL1|P|2.5.1\r" +
		"EVN|A08|20240301120000\rPID|1||100^^^HOSP^MR||DOE^JANE\rPV1|1|N\r" +
		"AL1|1|DA|PEN^Penicillin^L|SV\rAL1|2|FA|NUT^Peanut^L|MO\r"
	outs, err := st.Process(context.Background(), envelopeFor(t, serde, rawFor([]byte(msg))))
	if err != nil {
		t.Fatal(err)
	}
	var ev avro.ClinicalEvent
	var unmapped []avro.Exception
	for _, o := range outs {
		switch o.Topic {
		case topics.Events:
			if err := serde.Decode(o.Value, &ev); err != nil {
				t.Fatal(err)
			}
		case topics.Exceptions:
			var x avro.Exception
			if err := serde.Decode(o.Value, &x); err != nil {
				t.Fatal(err)
			}
			unmapped = append(unmapped, x)
		}
	}
	if len(ev.Allergies) != 2 {
		t.Fatalf("allergies %+v", ev.Allergies)
	}
	if a := ev.Allergies[0]; a.Code != "764146007" || a.CodingSystem != "SCT" || a.AltCode != "PEN" || a.AltCodingSystem != "L" {
		t.Errorf("mapped allergen %+v, want SCT first and the local code as the alternate", a)
	}
	if len(unmapped) != 1 || unmapped[0].Location != codemap.FieldAL13 || unmapped[0].CodedValue != "NUT" {
		t.Errorf("exceptions %+v, want one unmapped_code for NUT at AL1-3", unmapped)
	}
}
