// This file is FHIR → canonical for orders and results: ServiceRequest
// as ORM^O01's ORC/OBR, DiagnosticReport and Observation as ORU^R01's
// OBR and OBXs (v2-to-FHIR ORC[ServiceRequest], OBR[DiagnosticReport],
// OBX[Observation], reversed).

package fhir

import (
	"fmt"
	"google.golang.org/protobuf/reflect/protoreflect"
	"strconv"
	"strings"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	drpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/diagnostic_report_go_proto"
	opb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/careflow-health/careflow/avro"
)

// fromResult maps a DiagnosticReport, or an Observation that is not
// one's result, as ORU^R01. In a transaction, every DiagnosticReport is
// an order (OBR) with its result Observations; Observations no report
// names follow the only report if there is one, else stand alone
// (order_index -1, as an OBX before any OBR).
func (s *inScope) fromResult(r Resource) (*avro.ClinicalEvent, error) {
	ev := &avro.ClinicalEvent{EventType: inEvResult, MessageType: "ORU", TriggerEvent: "R01"}
	var reports []*drpb.DiagnosticReport
	var loose []*opb.Observation
	if s.bundle != nil {
		claimed := map[*opb.Observation]bool{}
		for _, e := range s.bundle.GetEntry() {
			if dr := e.GetResource().GetDiagnosticReport(); dr != nil {
				reports = append(reports, dr)
				for _, ref := range dr.GetResult() {
					if o := s.resolve(ref).Contained().GetObservation(); o != nil {
						claimed[o] = true
					}
				}
			}
		}
		for _, e := range s.bundle.GetEntry() {
			if o := e.GetResource().GetObservation(); o != nil && !claimed[o] {
				loose = append(loose, o)
			}
		}
	} else if dr := r.Contained().GetDiagnosticReport(); dr != nil {
		reports = []*drpb.DiagnosticReport{dr}
	} else {
		loose = []*opb.Observation{r.Contained().GetObservation()}
	}
	var p avro.Patient
	var err error
	if len(reports) > 0 {
		p, err = s.patientOf(reports[0], reports[0].GetSubject(), "DiagnosticReport.subject")
	} else {
		p, err = s.patientOf(loose[0], loose[0].GetSubject(), "Observation.subject")
	}
	if err != nil {
		return nil, err
	}
	ev.Patient = p
	for i, dr := range reports {
		o, err := s.fromReport(dr)
		if err != nil {
			return nil, err
		}
		ev.Orders = append(ev.Orders, o)
		for j, ref := range dr.GetResult() {
			obs := s.resolve(ref).Contained().GetObservation()
			if obs == nil {
				return nil, s.errorf(dr, fmt.Sprintf("DiagnosticReport.result[%d]", j), "OBX", "the result resolves to no Observation careflow was given")
			}
			if err := s.addObservation(ev, obs, i); err != nil {
				return nil, err
			}
		}
	}
	for _, obs := range loose {
		order := -1
		if len(reports) == 1 {
			order = 0
		} else if len(reports) == 0 && len(obs.GetBasedOn()) > 0 {
			o, err := s.fromBasedOn(obs, obs.GetBasedOn(), "Observation.basedOn")
			if err != nil {
				return nil, err
			}
			ev.Orders, order = append(ev.Orders, o), len(ev.Orders)
		}
		if err := s.addObservation(ev, obs, order); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// fromResultStatuses is DiagnosticReport.status to OBR-25 (HL7 table 0123),
// the IG's ConceptMap reversed: registered is I (no results yet), partial
// and preliminary P, the amended family C, cancelled and entered-in-error
// X (0123 has no code for an error).
var fromResultStatuses = map[cpb.DiagnosticReportStatusCode_Value]string{
	cpb.DiagnosticReportStatusCode_REGISTERED: "I", cpb.DiagnosticReportStatusCode_PARTIAL: "P",
	cpb.DiagnosticReportStatusCode_PRELIMINARY: "P", cpb.DiagnosticReportStatusCode_FINAL: "F",
	cpb.DiagnosticReportStatusCode_AMENDED: "C", cpb.DiagnosticReportStatusCode_CORRECTED: "C",
	cpb.DiagnosticReportStatusCode_APPENDED: "C", cpb.DiagnosticReportStatusCode_CANCELLED: "X",
	cpb.DiagnosticReportStatusCode_ENTERED_IN_ERROR: "X",
}

// fromReport is a DiagnosticReport as its order (OBR, and ORC-1 RE,
// observations to follow): the order numbers from its basedOn
// ServiceRequests, then its own identifiers (PLAC and FILL by type, an
// untyped one the filler's, since the report is the filler's), OBR-4
// from code, OBR-25 from status, OBR-7 from effective.
func (s *inScope) fromReport(dr *drpb.DiagnosticReport) (avro.Order, error) {
	o := avro.Order{Control: "RE"}
	if len(dr.GetBasedOn()) > 0 {
		var err error
		if o, err = s.fromBasedOn(dr, dr.GetBasedOn(), "DiagnosticReport.basedOn"); err != nil {
			return avro.Order{}, err
		}
	}
	for _, id := range dr.GetIdentifier() {
		s.fromOrderNumber(&o, id, "FILL")
	}
	inSetService(&o, dr.GetCode())
	o.ResultStatus = fromResultStatuses[dr.GetStatus().GetValue()]
	switch e := dr.GetEffective(); {
	case e.GetDateTime() != nil:
		o.ObservedAt = inDateTime(e.GetDateTime())
	case e.GetPeriod() != nil:
		o.ObservedAt = inPeriodStart(e.GetPeriod())
	}
	return o, nil
}

// inSetOrderNumber fills the placer or filler EI, the first one of each
// winning: ORC's before OBR's in v2, basedOn's before the report's here.
func inSetOrderNumber(o *avro.Order, role string, n inEI) {
	switch {
	case role == "PLAC" && o.PlacerOrderNumber == "":
		o.PlacerOrderNumber, o.PlacerNamespace, o.PlacerUniversalID, o.PlacerUniversalIDType = n.number, n.namespace, n.universalID, n.universalIDType
	case role == "FILL" && o.FillerOrderNumber == "":
		o.FillerOrderNumber, o.FillerNamespace, o.FillerUniversalID, o.FillerUniversalIDType = n.number, n.namespace, n.universalID, n.universalIDType
	}
}

// fromBasedOn is the order a result is based on: the first ServiceRequest
// the references resolve to, else the first reference's identifier (a
// logical reference), a placer number unless typed FILL.
func (s *inScope) fromBasedOn(owner proto.Message, refs []*dpb.Reference, path string) (avro.Order, error) {
	for _, ref := range refs {
		if sr := s.resolve(ref).Contained().GetServiceRequest(); sr != nil {
			o := s.fromRequest(sr)
			o.Control, o.Status = "RE", ""
			return o, nil
		}
	}
	for _, ref := range refs {
		if id := ref.GetIdentifier(); id.GetValue().GetValue() != "" {
			o := avro.Order{Control: "RE"}
			s.fromOrderNumber(&o, id, "PLAC")
			return o, nil
		}
	}
	return avro.Order{}, s.errorf(owner, path, "ORC-2", "the order it is based on resolves to no ServiceRequest careflow was given, and carries no identifier")
}

// fromRequestStatus is ServiceRequest.status as ORC-1 and ORC-5 (table
// 0119, 0038), the IG's ORC-5 ConceptMap reversed: an active order is
// new (NW), or a change (XO) when updated; revoked and entered-in-error
// cancel it (CA); on-hold is HD; completed is a status change (SC) to
// CM. A draft is not an order yet, and unknown says nothing v2 can.
func fromRequestStatus(st cpb.RequestStatusCode_Value, method string) (control, status string, ok bool) {
	switch st {
	case cpb.RequestStatusCode_ACTIVE:
		if method == MethodUpdate {
			return "XO", "", true
		}
		return "NW", "", true
	case cpb.RequestStatusCode_REVOKED:
		return "CA", "CA", true
	case cpb.RequestStatusCode_ENTERED_IN_ERROR:
		return "CA", "ER", true
	case cpb.RequestStatusCode_ON_HOLD:
		return "HD", "HD", true
	case cpb.RequestStatusCode_COMPLETED:
		return "SC", "CM", true
	}
	return "", "", false
}

// fromPriorities are ServiceRequest.priority to TQ1-9 / OBR-27.6 (table
// 0027): routine R, asap A, stat S; urgent, which 0027 lacks, is A.
var fromPriorities = map[cpb.RequestPriorityCode_Value]string{
	cpb.RequestPriorityCode_ROUTINE: "R", cpb.RequestPriorityCode_URGENT: "A",
	cpb.RequestPriorityCode_ASAP: "A", cpb.RequestPriorityCode_STAT: "S",
}

// fromServiceRequest maps a ServiceRequest as ORM^O01.
func (s *inScope) fromServiceRequest(r Resource, method string) (*avro.ClinicalEvent, error) {
	sr := r.Contained().GetServiceRequest()
	control, status, ok := fromRequestStatus(sr.GetStatus().GetValue(), method)
	if !ok {
		return nil, s.errorf(sr, "ServiceRequest.status", "ORC-1", "careflow maps no ServiceRequest of status %s to an order message", inCode(sr.GetStatus().GetValue()))
	}
	p, err := s.patientOf(sr, sr.GetSubject(), "ServiceRequest.subject")
	if err != nil {
		return nil, err
	}
	o := s.fromRequest(sr)
	o.Control, o.Status = control, status
	return &avro.ClinicalEvent{EventType: inEvOrder, MessageType: "ORM", TriggerEvent: "O01", Patient: p, Orders: []avro.Order{o}}, nil
}

// fromRequest is what a ServiceRequest says of its order: identifiers
// (PLAC and FILL by type, an untyped one the placer's, since the request
// is the placer's), code as OBR-4, priority, authoredOn as ORC-9 and the
// requester as ORC-12.
func (s *inScope) fromRequest(sr *srpb.ServiceRequest) avro.Order {
	var o avro.Order
	for _, id := range sr.GetIdentifier() {
		s.fromOrderNumber(&o, id, "PLAC")
	}
	inSetService(&o, sr.GetCode())
	o.Priority = fromPriorities[sr.GetPriority().GetValue()]
	o.OrderedAt = inDateTime(sr.GetAuthoredOn())
	o.OrderingProvider = inReferenceID(sr.GetRequester())
	return o
}

// fromObservationStatuses reverses statuses (observation.go), HL7 table
// 0085: registered is I (specimen in lab, no result yet, as FHIR defines
// registered), amended C; unknown says nothing, so is "".
var fromObservationStatuses = map[cpb.ObservationStatusCode_Value]string{
	cpb.ObservationStatusCode_FINAL: "F", cpb.ObservationStatusCode_PRELIMINARY: "P",
	cpb.ObservationStatusCode_CORRECTED: "C", cpb.ObservationStatusCode_AMENDED: "C",
	cpb.ObservationStatusCode_CANCELLED: "X", cpb.ObservationStatusCode_ENTERED_IN_ERROR: "W",
	cpb.ObservationStatusCode_REGISTERED: "I",
}

// addObservation appends o as the event's next OBX, under order, and
// each of its components as an OBX of its own (a blood pressure's
// systolic and diastolic, as v2 sends them): the panel itself is an OBX
// only when it has a value.
func (s *inScope) addObservation(ev *avro.ClinicalEvent, o *opb.Observation, order int) error {
	out := avro.Observation{SetID: strconv.Itoa(len(ev.Observations) + 1), OrderIndex: order}
	p, alt := inConcept(o.GetCode())
	out.Code, out.Text, out.CodingSystem = p.code, p.text, p.system
	out.AltCode, out.AltText, out.AltCodingSystem = alt.code, alt.text, alt.system
	if err := s.fromValue(o, &out, o.GetValue()); err != nil {
		return err
	}
	defer func() {
		for _, c := range o.GetComponent() {
			part := out // status, time and order of the panel
			part.SetID = strconv.Itoa(len(ev.Observations) + 1)
			p, alt := inConcept(c.GetCode())
			part.Code, part.Text, part.CodingSystem = p.code, p.text, p.system
			part.AltCode, part.AltText, part.AltCodingSystem = alt.code, alt.text, alt.system
			part.ValueType, part.Value, part.Units, part.UnitsText, part.UnitsSystem = "", "", "", "", ""
			part.ReferenceRange, part.AbnormalFlags = "", ""
			if err := s.fromValue(o, &part, componentValue(c)); err != nil || part.Value == "" {
				continue // a component without a value careflow can write is left out, as an empty panel is
			}
			ev.Observations = append(ev.Observations, part)
		}
	}()
	if rr := o.GetReferenceRange(); len(rr) > 0 {
		out.ReferenceRange = rr[0].GetText().GetValue()
		if out.ReferenceRange == "" && (rr[0].GetLow() != nil || rr[0].GetHigh() != nil) {
			out.ReferenceRange = rr[0].GetLow().GetValue().GetValue() + "-" + rr[0].GetHigh().GetValue().GetValue()
		}
	}
	var flags []string
	for _, cc := range o.GetInterpretation() {
		for _, c := range cc.GetCoding() {
			if c.GetCode().GetValue() != "" {
				flags = append(flags, c.GetCode().GetValue())
				break
			}
		}
	}
	out.AbnormalFlags = strings.Join(flags, "~")
	out.Status = fromObservationStatuses[o.GetStatus().GetValue()]
	switch e := o.GetEffective(); {
	case e.GetDateTime() != nil:
		out.ObservedAt = inDateTime(e.GetDateTime())
	case e.GetInstant() != nil:
		out.ObservedAt = inInstantValue(e.GetInstant())
	case e.GetPeriod() != nil:
		out.ObservedAt = inPeriodStart(e.GetPeriod())
	}
	if out.Value == "" && len(o.GetComponent()) > 0 {
		return nil // a panel of components: they are its OBXs
	}
	ev.Observations = append(ev.Observations, out)
	return nil
}

// componentValue is a component's value as an Observation's: the two
// value[x] choices have the same types, under the same names.
func componentValue(c *opb.Observation_Component) *opb.Observation_ValueX {
	src := c.GetValue()
	if src == nil {
		return nil
	}
	dst := &opb.Observation_ValueX{}
	dm := dst.ProtoReflect()
	src.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if df := dm.Descriptor().Fields().ByName(fd.Name()); df != nil && df.Message() != nil && fd.Message() != nil &&
			df.Message().FullName() == fd.Message().FullName() {
			dm.Set(df, v)
		}
		return true
	})
	return dst
}

// fromComparators are a Quantity's comparator as SN.1.
var fromComparators = map[cpb.QuantityComparatorCode_Value]string{
	cpb.QuantityComparatorCode_LESS_THAN: "<", cpb.QuantityComparatorCode_LESS_THAN_OR_EQUAL_TO: "<=",
	cpb.QuantityComparatorCode_GREATER_THAN_OR_EQUAL_TO: ">=", cpb.QuantityComparatorCode_GREATER_THAN: ">",
}

// fromValue reverses value() (OBX-2 and OBX-5, OBX-6): a Quantity is NM
// in its units (the UCUM code when it has one, its unit as the text), or
// SN (<^0.5) with a comparator; a string ST; a CodeableConcept CWE
// (code^text^system); an integer NM; a boolean ID Y or N; a dateTime
// DTM; a time TM; a Range and a Ratio SN (^1^-^5, ^1^:^128). A Period
// or SampledData has no OBX-5 careflow writes, and is an error.
func (s *inScope) fromValue(o *opb.Observation, out *avro.Observation, v *opb.Observation_ValueX) error {
	switch c := v.GetChoice().(type) {
	case nil:
	case *opb.Observation_ValueX_Quantity:
		q := c.Quantity
		out.ValueType, out.Value = "NM", q.GetValue().GetValue()
		if cmp, ok := fromComparators[q.GetComparator().GetValue()]; ok {
			out.ValueType, out.Value = "SN", cmp+"^"+out.Value
		}
		out.UnitsText = q.GetUnit().GetValue()
		out.Units = out.UnitsText
		if q.GetCode().GetValue() != "" {
			out.Units = q.GetCode().GetValue()
			if code, ok := fromCodeSystems[q.GetSystem().GetValue()]; ok {
				out.UnitsSystem = code
			} else {
				out.UnitsSystem = q.GetSystem().GetValue()
			}
		}
	case *opb.Observation_ValueX_StringValue:
		out.ValueType, out.Value = "ST", c.StringValue.GetValue()
	case *opb.Observation_ValueX_CodeableConcept:
		p, _ := inConcept(c.CodeableConcept)
		out.ValueType, out.Value = "CWE", p.cwe()
	case *opb.Observation_ValueX_Integer:
		out.ValueType, out.Value = "NM", strconv.Itoa(int(c.Integer.GetValue()))
	case *opb.Observation_ValueX_Boolean:
		out.ValueType, out.Value = "ID", map[bool]string{true: "Y", false: "N"}[c.Boolean.GetValue()]
	case *opb.Observation_ValueX_DateTime:
		out.ValueType, out.Value = "DTM", inDateTime(c.DateTime)
	case *opb.Observation_ValueX_Time:
		out.ValueType, out.Value = "TM", strings.ReplaceAll(inTimeOfDay(c.Time), ":", "")
	case *opb.Observation_ValueX_Range:
		out.ValueType, out.Value = "SN", "^"+c.Range.GetLow().GetValue().GetValue()+"^-^"+c.Range.GetHigh().GetValue().GetValue()
		out.Units = c.Range.GetLow().GetUnit().GetValue()
	case *opb.Observation_ValueX_Ratio:
		out.ValueType, out.Value = "SN", "^"+c.Ratio.GetNumerator().GetValue().GetValue()+"^:^"+c.Ratio.GetDenominator().GetValue().GetValue()
	default:
		name := strings.TrimPrefix(fmt.Sprintf("%T", c), "*observation_go_proto.Observation_ValueX_")
		return s.errorf(o, "Observation.value"+name, "OBX-5", "careflow's canonical observation has no value of this type")
	}
	return nil
}

// inTimeOfDay is a FHIR time as hh:mm:ss.
func inTimeOfDay(t *dpb.Time) string {
	us := t.GetValueUs()
	sec := us / 1e6
	return fmt.Sprintf("%02d:%02d:%02d", sec/3600, sec/60%60, sec%60)
}

// fromOrderNumber sets the order number id holds: placer or filler by
// its type (PLAC, FILL), else role, what the resource's own identifier
// is (a DiagnosticReport's the filler's, a ServiceRequest's the placer's).
func (s *inScope) fromOrderNumber(o *avro.Order, id *dpb.Identifier, role string) {
	if r := inOrderRole(id); r != "" {
		role = r
	}
	inSetOrderNumber(o, role, s.fromOrderIdentifier(id))
}

// inSetService is OBR-4 from a resource's code: the first coding with a
// standard system, and the local one as the alternate.
func inSetService(o *avro.Order, code *dpb.CodeableConcept) {
	p, alt := inConcept(code)
	o.ServiceCode, o.ServiceText, o.ServiceSystem = p.code, p.text, p.system
	o.ServiceAltCode, o.ServiceAltText, o.ServiceAltSystem = alt.code, alt.text, alt.system
}
