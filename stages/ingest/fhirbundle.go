// This file takes FHIR transaction and batch Bundles (POST to the base),
// and resolves what a write references: the resources it names by id,
// which travel with its raw record, and the patient whose key it goes
// under.

package ingest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/stages/identity"
)

func (s *Stage) serveBundle(w http.ResponseWriter, r *http.Request) {
	rc, ok := s.authorise(w, r)
	if !ok {
		return
	}
	in := rc.in
	body, fe := readBody(w, r, in)
	var res fhir.Resource
	if fe == nil {
		res, fe = decode(body, "Bundle")
	}
	var kind string
	var its []interaction
	if fe == nil {
		kind, its, fe = s.bundleInteractions(rc, res)
	}
	if fe != nil {
		s.rejected(in, fe)
		writeOutcome(w, fe)
		return
	}
	var resp []fhir.ResponseEntry
	if kind == "transaction" {
		plans, fe := s.write(r.Context(), rc, its, body)
		if fe != nil {
			s.rejected(in, fe)
			writeOutcome(w, fe)
			return
		}
		for _, p := range plans {
			resp = append(resp, entryResponse(p))
		}
	} else {
		// A batch's entries succeed or fail each on its own (R4 3.1.0.11).
		for _, it := range its {
			plans, fe := s.write(r.Context(), rc, []interaction{it}, nil)
			if fe != nil {
				s.rejected(in, fe)
				resp = append(resp, fhir.ResponseEntry{Status: fmt.Sprintf("%d %s", fe.status, http.StatusText(fe.status)), Outcome: fhir.OperationOutcome(fe.err)})
				continue
			}
			resp = append(resp, entryResponse(plans[0]))
		}
	}
	b, err := fhir.ResponseBundle(kind+"-response", identity.NewMessageID(), resp)
	if err != nil {
		writeOutcome(w, &fhirError{status: http.StatusInternalServerError, err: err})
		return
	}
	writeFHIR(w, http.StatusOK, b)
}

func entryResponse(p plan) fhir.ResponseEntry {
	status := "200 OK"
	if p.created {
		status = "201 Created"
	}
	return fhir.ResponseEntry{Status: status, Location: location(p.stored), ETag: p.stored.ETag(), LastModified: p.stored.LastUpdated}
}

// bundleInteractions reads a Bundle's entries as interactions, each
// checked as its own request would be: a write (POST or PUT), of a type
// the interface takes, under a scope the writer holds, valid for its URL.
// In a batch an entry that fails is still refused with the whole Bundle:
// careflow answers a batch's content errors at once, and only storage is
// per entry.
func (s *Stage) bundleInteractions(rc receipt, bundle fhir.Resource) (string, []interaction, *fhirError) {
	entries, err := fhir.Entries(bundle)
	if err != nil {
		return "", nil, &fhirError{status: http.StatusBadRequest, err: err}
	}
	kind := "batch"
	if bundle.Contained().GetBundle().GetType().GetValue() == cpb.BundleTypeCode_TRANSACTION {
		kind = "transaction"
	}
	its := make([]interaction, 0, len(entries))
	for i, e := range entries {
		at := fmt.Sprintf("Bundle.entry[%d]", i)
		if e.Method != "POST" && e.Method != "PUT" {
			return "", nil, refuseFHIR(http.StatusNotFound, fhir.CodeNotSupported, at+".request.method",
				"careflow takes writes (POST, PUT) in a Bundle, not "+strconv.Quote(e.Method)+": it is the interface layer, not the record")
		}
		path, query, _ := strings.Cut(e.URL, "?")
		typ, id, _ := strings.Cut(path, "/")
		if typ != e.Resource.Type() {
			return "", nil, refuseFHIR(http.StatusBadRequest, fhir.CodeInvalid, at+".request.url",
				fmt.Sprintf("the entry's url is for %s; its resource is a %s", typ, e.Resource.Type()))
		}
		body, err := fhir.JSON(e.Resource.Message())
		if err != nil {
			return "", nil, withPrefix(&fhirError{status: http.StatusBadRequest, err: err}, at+".resource")
		}
		it := interaction{typ: typ, id: id, method: "create", body: body, res: e.Resource,
			ifNoneExist: e.IfNoneExist, ifMatch: e.IfMatch, fullURL: e.FullURL}
		if e.Method == "PUT" {
			it.method = "update"
			if id == "" {
				it.conditional = query
			}
		}
		if fe := s.allowed(rc, typ, it.method); fe != nil {
			return "", nil, fe
		}
		if fe := checkID(it); fe != nil {
			return "", nil, withPrefix(fe, at+".resource")
		}
		its = append(its, it)
	}
	return kind, its, nil
}

// withPrefix moves fe's element paths under a Bundle entry.
func withPrefix(fe *fhirError, at string) *fhirError {
	is, ok := fe.err.(*fhir.Issues)
	if !ok {
		return fe
	}
	out := &fhir.Issues{Issues: slices.Clone(is.Issues)}
	for i, x := range out.Issues {
		if x.Expression != "" {
			_, rest, _ := strings.Cut(x.Expression, ".")
			out.Issues[i].Expression = at + "." + rest
			if rest == "" {
				out.Issues[i].Expression = at
			}
		}
	}
	return &fhirError{status: fe.status, err: out}
}

// resolve finds what the written resources reference by id, and the
// patient key they go under: a Patient's own identifiers, else those of
// the first Patient a resource names (subject, patient, an Appointment's
// participant), by id or by a logical identifier. That patient must be on
// the interface, in this write or stored before it: careflow routes by
// patient, so a write about a patient it cannot identify is refused now
// (422) rather than accepted and dead-lettered later. Other references
// (an Encounter, a ServiceRequest) travel with the write when careflow
// holds them, and are left as they are when it does not.
func (s *Stage) resolve(in *Interface, its []interaction, plans []plan) ([]json.RawMessage, string, *fhirError) {
	here := map[string]*storedResource{}
	for _, p := range plans {
		here[p.stored.Type+"/"+p.stored.ID] = p.stored
	}
	var related []json.RawMessage
	var patient []fhir.Identifier
	havePatient := false
	for _, p := range plans {
		if p.stored.Type == "Patient" && !havePatient {
			patient, havePatient = p.stored.Identifiers, true
		}
	}
	firstMissing := ""
	for i, p := range plans {
		for _, ref := range fhir.References(p.stored.Resource) {
			typ, id, _ := strings.Cut(strings.TrimPrefix(ref.Reference, "/"), "/")
			if ref.Reference == "" || strings.Contains(ref.Reference, ":") {
				if !havePatient && ref.Identifier != nil && (typ == "Patient" || strings.HasSuffix(ref.Path, ".subject") || strings.HasSuffix(ref.Path, ".patient")) {
					patient, havePatient = []fhir.Identifier{*ref.Identifier}, true
				}
				continue
			}
			if !slices.Contains(fhir.ResourceTypes, typ) {
				continue // a Practitioner, an Organization: not careflow's to hold
			}
			target := here[typ+"/"+id]
			if target == nil {
				if target = s.fhir.get(in.Name, typ, id); target != nil {
					related = append(related, target.Resource)
				}
			}
			if typ != "Patient" || havePatient {
				continue
			}
			if target == nil {
				if firstMissing == "" {
					firstMissing = ref.Path
					if len(its) > 1 {
						firstMissing = fmt.Sprintf("Bundle.entry[%d].resource%s", i, strings.TrimPrefix(ref.Path, p.stored.Type))
					}
				}
				continue
			}
			patient, havePatient = target.Identifiers, true
		}
	}
	switch {
	case !havePatient && firstMissing != "":
		return nil, "", refuseFHIR(http.StatusUnprocessableEntity, fhir.CodeProcessing, firstMissing,
			"the reference names a Patient interface "+in.Name+" does not hold: write the Patient first, or name it by identifier")
	case !havePatient:
		return nil, "", refuseFHIR(http.StatusUnprocessableEntity, fhir.CodeProcessing, its[0].typ,
			"the write names no patient; careflow routes every event by its patient")
	}
	ids := make([]identity.Identifier, 0, len(patient))
	for _, id := range patient {
		ids = append(ids, identity.Identifier{Value: id.Value, Authority: s.cfg.FHIRSystems.AuthorityOf(id.System, id.Assigner), Type: id.Type})
	}
	key, _ := in.Identity.Key(ids)
	return related, key, nil
}

// fhirRaw is a FHIR write's raw record: the body as sent (the Bundle for
// a transaction), what it references, and the header fields an HL7 v2
// message would give (type, control id, version, sender).
func (s *Stage) fhirRaw(rc receipt, its []interaction, plans []plan, bundle []byte, related []json.RawMessage, key string, now time.Time) *avro.RawMessage {
	id := identity.NewMessageID()
	raw := &avro.RawMessage{
		MessageID: id, CorrelationID: id, Interface: rc.in.Name, Transport: avro.TransportFHIR, ReceivedAt: now,
		Version: FHIRVersion, PatientKey: key, Writer: rc.writer.String(), SendingApplication: rc.writer.Who,
	}
	if bundle != nil {
		raw.Payload, raw.MessageType, raw.TriggerEvent, raw.ControlID = bundle, "Bundle", "transaction", "Bundle/"+id
	} else {
		raw.Payload, raw.MessageType, raw.TriggerEvent, raw.ControlID = its[0].body, its[0].typ, its[0].method, location(plans[0].stored)
	}
	raw.IdempotencyKey = writtenKey(rc.in.Name, plans)
	if len(related) > 0 {
		raw.Related, _ = json.Marshal(related)
	}
	return raw
}

func unescapeQuery(s string) (string, error) { return url.QueryUnescape(s) }
