package normalise

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/topics"
)

// An identifier that fails its interface's check digit raises one
// invalid_identifier beside the event, naming its place, never the number;
// a valid one, or an interface without a policy, raises nothing.
func TestInvalidIdentifier(t *testing.T) {
	serde, err := avro.NewSerde(context.Background(), testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(Config{Serde: serde, Now: func() time.Time { return testNow },
		Identity: map[string]identity.Policy{"ehr": {Trust: []identity.Trusted{{Type: "NH", Check: "nhs"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	adt := func(pid3 string) []byte {
		return []byte("MSH|^~\\&|EHR|HOSP|CF|HOSP|20240301120000||ADT^A01|C1|P|2.5.1\rEVN|A01|20240301120000\rPID|1||" + pid3 + "||DOE^JANE\rPV1|1|I|W1\r")
	}
	tests := []struct {
		name, iface, pid3 string
		want              int
	}{
		{"mistyped NHS number", "ehr", "M1^^^HOSP^MR~9434765918^^^NHS^NH", 1},
		{"valid NHS number", "ehr", "M1^^^HOSP^MR~9434765919^^^NHS^NH", 0},
		{"no policy for the interface", "lab", "M1^^^HOSP^MR~9434765918^^^NHS^NH", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := rawFor(adt(tc.pid3))
			raw.Interface = tc.iface
			outs, err := st.Process(context.Background(), envelopeFor(t, serde, raw))
			if err != nil {
				t.Fatal(err)
			}
			var excs []avro.Exception
			for _, o := range outs {
				if o.Topic == topics.Exceptions {
					var x avro.Exception
					if err := serde.Decode(o.Value, &x); err != nil {
						t.Fatal(err)
					}
					excs = append(excs, x)
				}
			}
			if len(excs) != tc.want || len(outs) != 1+tc.want {
				t.Fatalf("%d exceptions in %d outputs, want %d beside the event", len(excs), len(outs), tc.want)
			}
			if tc.want == 1 {
				x := excs[0]
				if x.Code != CodeInvalidIdentifier || !strings.Contains(x.Reason, "PID-3[2]") || strings.Contains(x.Reason, "9434765918") {
					t.Errorf("exception %+v", x)
				}
			}
		})
	}
}
