// This file maps a message type and trigger event to the abstract message
// structure written in MSH-9.3 (HL7 table 0354), and says which segments
// that structure requires. MSH-9.3 exists from HL7 2.3.1 on.

package render

import (
	"strconv"
	"strings"
)

// structures is HL7 table 0354 for the messages careflow writes, as of
// 2.5.1 (the structures of the events below did not change between 2.3.1
// and 2.5.1). An event not listed gets no MSH-9.3: writing a guessed
// structure would make a strict receiver reject a valid message.
var structures = map[string]string{
	"ADT^A01": "ADT_A01", "ADT^A04": "ADT_A01", "ADT^A08": "ADT_A01", "ADT^A13": "ADT_A01",
	"ADT^A02": "ADT_A02",
	"ADT^A03": "ADT_A03",
	"ADT^A05": "ADT_A05", "ADT^A14": "ADT_A05", "ADT^A28": "ADT_A05", "ADT^A31": "ADT_A05",
	"ADT^A06": "ADT_A06", "ADT^A07": "ADT_A06",
	"ADT^A09": "ADT_A09", "ADT^A10": "ADT_A09", "ADT^A11": "ADT_A09",
	"ADT^A12": "ADT_A12",
	"ADT^A17": "ADT_A17",
	"ADT^A21": "ADT_A21", "ADT^A22": "ADT_A21", "ADT^A23": "ADT_A21", "ADT^A25": "ADT_A21",
	"ADT^A26": "ADT_A21", "ADT^A27": "ADT_A21", "ADT^A29": "ADT_A21", "ADT^A32": "ADT_A21",
	"ADT^A33": "ADT_A21",
	"ADT^A24": "ADT_A24", "ADT^A37": "ADT_A37",
	"ADT^A30": "ADT_A30", "ADT^A34": "ADT_A30", "ADT^A36": "ADT_A30",
	"ADT^A38": "ADT_A38",
	"ADT^A39": "ADT_A39", "ADT^A40": "ADT_A39", "ADT^A41": "ADT_A39", "ADT^A42": "ADT_A39",
	"ORM^O01": "ORM_O01",
	"OML^O21": "OML_O21",
	"ORU^R01": "ORU_R01",
	"ORR^O02": "ORR_O02",
	"ORL^O22": "ORL_O22",
}

// Structure returns the MSH-9.3 message structure of messageType^trigger,
// or "" when careflow does not know it. Every ACK is structure ACK.
func Structure(messageType, trigger string) string {
	if messageType == "ACK" {
		return "ACK"
	}
	return structures[messageType+"^"+trigger]
}

// pv1Optional lists the ADT structures in which PV1 may be left out; every
// other ADT structure careflow writes requires PV1, so an event without an
// encounter gets a PV1 with patient class N (not applicable).
var pv1Optional = map[string]bool{"ADT_A39": true, "ADT_A30": true, "ADT_A24": true, "ADT_A37": true}

// carries says which of the optional patient segments careflow writes a
// structure has room for, after HL7 2.5.1's definitions: PD1 (the GP)
// follows PID in all of them; NK1 (next of kin) only where the structure
// has an NK1 group; AL1 (allergies) likewise. A structure not listed
// carries none, so an event with next of kin or allergies rendered as,
// say, an A02 leaves them out rather than write what a strict receiver
// refuses.
var carries = map[string]struct{ pd1, nk1, al1 bool }{
	"ADT_A01": {true, true, true},
	"ADT_A05": {true, true, true},
	"ADT_A02": {pd1: true},
	"ADT_A03": {pd1: true},
	"ADT_A09": {pd1: true},
	"ADT_A39": {pd1: true},
	"ORM_O01": {pd1: true, al1: true},
	"OML_O21": {true, true, true},
	"ORU_R01": {pd1: true, nk1: true},
}

// version is an HL7 version as comparable numbers: "2.5.1" is {2, 5, 1}.
type version [3]int

func parseVersion(s string) (version, bool) {
	var v version
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, v[0] == 2
}

// atLeast reports whether v is o or later.
func (v version) atLeast(o version) bool {
	for i := range v {
		if v[i] != o[i] {
			return v[i] > o[i]
		}
	}
	return true
}
