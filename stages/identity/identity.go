// Package identity is where careflow decides who and what a message is:
// the id it gives each message it receives, the key a sender's resend is
// recognised by, the patient a message belongs to (its Kafka key, which
// keeps one patient's messages in order), the control ids careflow writes
// on its ACKs and on what it sends each destination, and the ids of
// outcome records. Every stage that needs one of these calls this package:
// a rule computed in two places drifts, and here it once did (ingest keyed
// by the first PID-3 repetition while validate and normalise took any).
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// NewMessageID returns a new message id: 16 random bytes in hex. Ingest
// gives one to every message it receives; it follows the message through
// every topic, and is its correlation id until a workflow says otherwise.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// controlIDLen is the most HL7 allows in MSH-10 (ST, 20 characters).
const controlIDLen = 20

// ACKControlID is the MSH-10 of careflow's ACK to a message: the message
// id cut to the 20 characters HL7 2.5's ST allows there, unique enough
// among one sender's ACKs.
func ACKControlID(messageID string) string { return messageID[:min(len(messageID), controlIDLen)] }

// ControlID is the MSH-10 of what careflow sends destination for the event
// with eventID: the first 20 hex digits of SHA-256(event id, destination).
// It depends on nothing else, so a retry, a restart or a replay of the same
// event resends the same control id and the receiver can drop the
// duplicate, while two destinations never share one.
func ControlID(eventID, destination string) string {
	h := sha256.New()
	h.Write([]byte(eventID))
	h.Write([]byte{0}) // separator: ("ab","c") and ("a","bc") must differ
	h.Write([]byte(destination))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))[:controlIDLen]
}

// HasControlID reports whether a message carries a control id (MSH-10): not
// empty, not spaces, not HL7's explicit null (""). A message without one
// cannot be matched to its ACK or recognised when resent.
func HasControlID(controlID string) bool { return present(controlID) }

// IdempotencyKey is MSH-3.1|MSH-4.1|MSH-10: the same for every resend of
// one message by one sender, and the key validate drops resends by.
func IdempotencyKey(m *hl7v2.Message) string {
	return m.Get("MSH-3.1") + "|" + m.Get("MSH-4.1") + "|" + m.Get("MSH-10")
}

// PatientRepetition returns which repetition (from 1) of PID-3 identifies
// the patient: the first with an ID (CX.1) and an assigning authority
// (CX.4.1), which says whose number it is; else the first with an ID; 0
// when no repetition has an ID. Empty repetitions are skipped: a sender
// that leaves the first blank still names its patient.
func PatientRepetition(pid3 hl7v2.Field) int {
	first := 0
	for i := 1; i <= pid3.Reps(); i++ {
		r := pid3.Rep(i)
		if !present(r.Component(1).String()) {
			continue
		}
		if present(r.Component(4).Sub(1).String()) {
			return i
		}
		if first == 0 {
			first = i
		}
	}
	return first
}

// HasPatient reports whether m identifies a patient: a PID whose PID-3 has
// an ID in some repetition.
func HasPatient(m *hl7v2.Message) bool {
	pid, ok := m.Segment("PID")
	return ok && PatientRepetition(pid.Field(3)) > 0
}

// PatientKey is the Kafka key of m: the patient's identifier as "CX.1^CX.4.1"
// of the repetition PatientRepetition chooses, so one patient's messages
// share a partition and keep their order; "" when m names no patient.
func PatientKey(m *hl7v2.Message) string {
	key, _ := Policy{}.PatientKey(m) // no trusted kinds: the rule above
	return key
}

// OutcomeID is the id of an outcome record: the message id and what the
// outcome is about, joined by "/" ("6f92…/deliver/lab/attempt-2"). It is
// deterministic, so a replay writes the same id and analytics counts the
// outcome once.
func OutcomeID(messageID string, parts ...string) string {
	return messageID + "/" + strings.Join(parts, "/")
}

// present reports whether an HL7 value holds something: not empty, not
// only spaces, not the explicit null "".
func present(v string) bool {
	v = strings.TrimSpace(v)
	return v != "" && v != `""`
}
