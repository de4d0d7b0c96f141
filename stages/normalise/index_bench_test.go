package normalise

import (
	"context"
	"fmt"
	"testing"

	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/patientindex"
)

// BenchmarkProcessIndex is Process per message, with the patient index
// off, on for a patient it already knows (the usual case: the index
// writes nothing), and on for a new patient every message (the worst
// case, and what make bench's stage loop sends: two index records per
// message). The messages are built before the timer starts; up to 20,000
// of them are distinct, so run it with -benchtime 20000x or less.
func BenchmarkProcessIndex(b *testing.B) {
	const distinct = 20000
	for _, tc := range []struct {
		name  string
		index bool
		fresh bool
	}{{"off", false, false}, {"known_patient", true, false}, {"new_patient", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			st, serde := newStage(&testing.T{})
			if tc.index {
				st.index = patientindex.New()
			}
			envs := make([]stages.Envelope, distinct)
			for i := range envs {
				mrn := "B1"
				if tc.fresh {
					mrn = fmt.Sprintf("B%d", i)
				}
				msg := "MSH|^~\\&|EHR|HOSP|CAREFLOW|HOSP|20240301120000||ADT^A08^ADT_A01|C1|P|2.5.1\r" +
					"EVN|A08|20240301120000\rPID|1||" + mrn + "^^^HOSP^MR~9990000018^^^NHS^NH||DOE^JANE||19800101|F\rPV1|1|I|W1\r"
				if tc.fresh {
					msg = "MSH|^~\\&|EHR|HOSP|CAREFLOW|HOSP|20240301120000||ADT^A08^ADT_A01|C1|P|2.5.1\r" +
						"EVN|A08|20240301120000\rPID|1||" + mrn + "^^^HOSP^MR||DOE^JANE||19800101|F\rPV1|1|I|W1\r"
				}
				envs[i] = envelopeFor(&testing.T{}, serde, rawFor([]byte(msg)))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := st.Process(context.Background(), envs[i%distinct]); err != nil {
					b.Fatal(err)
				}
				if st.index != nil {
					st.index.Commit()
				}
			}
		})
	}
}
