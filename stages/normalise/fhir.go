// This file normalises a FHIR write (ingest's raw record of a create, an
// update or a transaction Bundle) into the same ClinicalEvent as an HL7
// v2 message, with connectors/fhir's mapping; from here on the event goes
// through the patient index, the code maps and the matrix like any other.

package normalise

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/stages"
	"github.com/careflow-health/careflow/stages/identity"
	"github.com/careflow-health/careflow/stages/patientindex"
	"github.com/careflow-health/careflow/topics"
)

// CodeFHIRUnmapped marks a FHIR write careflow read but could not map to
// a canonical event; its location is the FHIR element.
const CodeFHIRUnmapped = "normalise.fhir_unmapped"

// fhirEvent maps raw, a FHIR write, to its canonical event.
func (s *Stage) fhirEvent(raw *avro.RawMessage) (*avro.ClinicalEvent, error) {
	res, err := fhir.Decode(raw.Payload)
	if err != nil {
		return nil, fhirFailure(raw, err)
	}
	var related []fhir.Resource
	if len(raw.Related) > 0 {
		var list []json.RawMessage
		if err := json.Unmarshal(raw.Related, &list); err != nil {
			return nil, stages.Permanent(CodeFHIRUnmapped, "", fmt.Errorf("normalise: interface %s: the resources the write references: %w", raw.Interface, err))
		}
		for _, b := range list {
			r, err := fhir.Decode(b)
			if err != nil {
				return nil, fhirFailure(raw, err)
			}
			related = append(related, r)
		}
	}
	method := raw.TriggerEvent
	if method != fhir.MethodUpdate {
		method = fhir.MethodCreate // a create, or a transaction (whose entries say theirs)
	}
	ev, err := fhir.Canonical(fhir.Write{Interface: raw.Interface, Method: method, Resource: res, Related: related}, s.fhirSystems)
	if err != nil {
		return nil, fhirFailure(raw, err)
	}
	ev.EventID, ev.CorrelationID, ev.IdempotencyKey = raw.MessageID, raw.CorrelationID, raw.IdempotencyKey
	p := &ev.Provenance
	// A create's body has no id (the API assigned it); the raw record's
	// control id says which resource and version it became.
	if typ, rest, ok := strings.Cut(raw.ControlID, "/"); ok && typ == raw.MessageType && p.ResourceID == "" {
		id, version, _ := strings.Cut(rest, "/_history/")
		p.ResourceType, p.ResourceID, p.ResourceVersion = typ, id, version
	}
	ownOrder(ev, raw)
	p.Interface, p.MessageID, p.ControlID, p.Version = raw.Interface, raw.MessageID, raw.ControlID, raw.Version
	p.SendingApplication, p.IngestTime = raw.SendingApplication, raw.ReceivedAt
	if p.MessageTime == "" {
		p.MessageTime = raw.ReceivedAt.UTC().Format("20060102150405")
	}
	if p.EventTime == "" {
		p.EventTime = p.MessageTime
	}
	if len(ev.Patient.Identifiers) == 0 && ev.EventType != "" {
		return nil, stages.Permanent(CodeNoPatient, "subject", fmt.Errorf("normalise: interface %s: the %s names no patient careflow can identify", raw.Interface, raw.MessageType))
	}
	return ev, nil
}

// ownOrder gives a result that names no order (an Observation on its
// own, with neither a DiagnosticReport nor basedOn) the order an ORU^R01
// must have: filled by the writer (FHIR's own id as the filler number,
// under the interface's name), for the service the first observation
// measures, so that every subscriber gets a valid ORU and one result is
// one order.
func ownOrder(ev *avro.ClinicalEvent, raw *avro.RawMessage) {
	if ev.EventType != EventResult || len(ev.Orders) > 0 || len(ev.Observations) == 0 {
		return
	}
	first := ev.Observations[0]
	number := ev.Provenance.ResourceID
	if number == "" {
		number = raw.MessageID
	}
	ev.Orders = []avro.Order{{Control: "RE", FillerOrderNumber: number, FillerNamespace: strings.ToUpper(raw.Interface),
		ServiceCode: first.Code, ServiceText: first.Text, ServiceSystem: first.CodingSystem,
		ResultStatus: first.Status, ObservedAt: first.ObservedAt}}
	for i := range ev.Observations {
		ev.Observations[i].OrderIndex = 0
	}
}

// fhirFailure is the permanent error of a FHIR write that does not map,
// at its element.
func fhirFailure(raw *avro.RawMessage, err error) error {
	code, loc := CodeFHIRUnmapped, ""
	var is *fhir.Issues
	var fe *fhir.Error
	switch {
	case errors.As(err, &is) && len(is.Issues) > 0:
		code, loc = "fhir."+string(is.Issues[0].Code), is.Issues[0].Expression
	case errors.As(err, &fe):
		loc = fe.Path
	}
	return stages.Permanent(code, loc, fmt.Errorf("normalise: interface %s: %w", raw.Interface, err))
}

// fhirIdentityMessage is what the index is asked about a FHIR write: the
// patient's identifiers, as Canonical read them, keyed by the interface's
// policy. FHIR has no merge message; Patient.link is not acted on.
func (s *Stage) fhirIdentityMessage(raw *avro.RawMessage, ev *avro.ClinicalEvent, in stages.Envelope) patientindex.Message {
	msg := patientindex.Message{Interface: raw.Interface, MessageID: raw.MessageID, At: raw.ReceivedAt, Key: string(in.Key)}
	if code := in.Headers.Get(topics.HeaderReviewCode); code == patientindex.CodeConflict {
		msg.Approved, msg.ApprovedCode = in.Headers.Get(topics.HeaderReviewID), code
	}
	if msg.At.IsZero() {
		msg.At = s.now()
	}
	ids := make([]identity.Identifier, len(ev.Patient.Identifiers))
	for i, id := range ev.Patient.Identifiers {
		ids[i] = identity.Identifier{Value: id.Value, Authority: id.AssigningAuthority, Type: id.TypeCode}
	}
	key, invalid := s.identity[raw.Interface].Key(ids)
	if key != "" {
		msg.Key = key
	}
	bad := map[int]bool{}
	for _, x := range invalid {
		bad[x.Rep] = true
	}
	for i, id := range ev.Patient.Identifiers {
		if id.Value != "" && !bad[i+1] {
			msg.Identifiers = append(msg.Identifiers, patientindex.Identifier{Value: id.Value, Authority: id.AssigningAuthority, Type: id.TypeCode, Rep: i + 1})
		}
	}
	return msg
}
