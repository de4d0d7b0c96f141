// This file is the demo's FHIR app: a home-monitoring app that, every few
// seconds, posts a patient's reading (blood pressure, heart rate, SpO2) to
// careflow's FHIR interface apps as a transaction Bundle, the Patient
// matched on their NHS number (conditional update) and the Observation
// referring to it by urn:uuid, with a bearer JWT from the demo's identity
// provider. Once, at start, it also posts an Observation with a token that
// lacks system/Observation.write, which careflow must refuse with 403:
// the summary shows that the SMART scopes are enforced.

package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	opb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"

	"github.com/careflow-health/careflow/connectors/fhir"
)

const (
	// AppsInterface is careflow's FHIR interface the app writes to.
	AppsInterface = "apps"
	// DefaultAppInterval is how often the app posts a reading.
	DefaultAppInterval = 3 * time.Second
	// appScope is what the app's token grants: the interface's scope
	// and SMART scopes for the two types it writes.
	appScope = "careflow/" + AppsInterface + ".write system/Patient.write system/Observation.write"
	// scopeCheckScope lacks system/Observation.write.
	scopeCheckScope = "careflow/" + AppsInterface + ".write system/Patient.write"
	// tokenRenew is how long before expiry the app gets a new token.
	tokenRenew = 5 * time.Minute
)

// Code systems the app writes.
const (
	loincSystem     = "http://loinc.org"
	ucumSystem      = "http://unitsofmeasure.org"
	categorySystem  = "http://terminology.hl7.org/CodeSystem/observation-category"
	identifierTypes = "http://terminology.hl7.org/CodeSystem/v2-0203"
)

// reading is a kind of home measurement: its LOINC code, UCUM unit and
// the range of plausible values the app draws from.
type reading struct {
	code, display string
	unit, ucum    string
	lo, hi        int
}

var readings = []reading{
	{"8480-6", "Systolic blood pressure", "mmHg", "mm[Hg]", 100, 165},
	{"8462-4", "Diastolic blood pressure", "mmHg", "mm[Hg]", 60, 100},
	{"8867-4", "Heart rate", "beats/minute", "/min", 52, 110},
	{"59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%", 91, 100},
}

// person is who a patient is, as the app knows them. It never changes in
// a run, so the app holds a copy apart from the EHR's patients.
type person struct {
	mrn, nhs, family, given, birthDate, sex string
}

// registry holds the patients the EHR has registered with careflow, for
// the app: a reading for a patient careflow has never heard of would send
// their name for review (the ownership matrix) rather than match it.
type registry struct {
	mu     sync.Mutex
	people []person
	seen   map[string]bool
}

// sync adds the registered patients of ps not yet known. It runs on the
// EHR's goroutine, which owns ps.
func (r *registry) sync(ps []*patient) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		if !p.registered || r.seen[p.mrn] || p.nhs == "" {
			continue
		}
		if r.seen == nil {
			r.seen = map[string]bool{}
		}
		r.seen[p.mrn] = true
		r.people = append(r.people, person{mrn: p.mrn, nhs: p.nhs, family: p.family, given: p.given, birthDate: p.birthDate, sex: p.sex})
	}
}

func (r *registry) pick(rng *mrand.Rand) (person, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.people) == 0 {
		return person{}, false
	}
	return r.people[rng.IntN(len(r.people))], true
}

// fhirApp posts readings. Construct with newFHIRApp; run it in one
// goroutine.
type fhirApp struct {
	base    string // careflow's FHIR base for the interface: http://host:port/fhir/apps
	idp     *IdP
	st      *stats
	reg     *registry
	log     *slog.Logger
	every   time.Duration
	client  *http.Client
	rng     *mrand.Rand
	systems *fhir.Systems

	token    string
	tokenExp time.Time
	warned   map[int]bool // statuses already logged
}

func newFHIRApp(base string, idp *IdP, st *stats, reg *registry, log *slog.Logger, every time.Duration) *fhirApp {
	return &fhirApp{
		base: base, idp: idp, st: st, reg: reg, log: log, every: every,
		client:  &http.Client{Timeout: 10 * time.Second},
		rng:     mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 11)),
		systems: fhir.NewSystems(nil),
		warned:  map[int]bool{},
	}
}

// run posts the scope check until careflow answers it, and a reading for
// a registered patient every a.every, until ctx ends.
func (a *fhirApp) run(ctx context.Context) error {
	t := time.NewTicker(a.every)
	defer t.Stop()
	checked := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		if !checked {
			checked = a.scopeCheck(ctx, now)
		}
		p, ok := a.reg.pick(a.rng)
		if !ok {
			continue // the EHR has registered no one yet
		}
		r := readings[a.rng.IntN(len(readings))]
		body, err := appBundle(p, r, r.lo+a.rng.IntN(r.hi-r.lo+1), now, a.systems)
		if err != nil {
			return fmt.Errorf("demo: app bundle: %w", err)
		}
		tok, err := a.tokenFor()
		if err != nil {
			return err
		}
		a.post(ctx, a.base, tok, body, 0)
	}
}

// tokenFor is the app's token, minted again shortly before it expires.
func (a *fhirApp) tokenFor() (string, error) {
	if a.token != "" && time.Until(a.tokenExp) > tokenRenew {
		return a.token, nil
	}
	tok, err := a.idp.Mint(appScope, DefaultSubject, tokenTTL)
	if err != nil {
		return "", err
	}
	a.token, a.tokenExp = tok, time.Now().Add(tokenTTL)
	return tok, nil
}

// scopeCheck posts one Observation with a token lacking
// system/Observation.write and records careflow's status; false when
// careflow did not answer (not up yet), to try again.
func (a *fhirApp) scopeCheck(ctx context.Context, now time.Time) bool {
	obs, err := observation(readings[3], 97, now, &dpb.Reference{ // an SpO2 reading
		Identifier: identifier(a.systems.SearchURI("NHS"), "9990000018", "NH"), // the test range; no one's
	})
	var body []byte
	if err == nil {
		body, err = fhir.JSON(obs)
	}
	if err != nil {
		a.log.Error("app: scope check observation", "err", err)
		return true
	}
	tok, err := a.idp.Mint(scopeCheckScope, DefaultSubject, time.Minute)
	if err != nil {
		return true
	}
	status := a.post(ctx, a.base+"/Observation", tok, body, http.StatusForbidden)
	if status == 0 {
		return false
	}
	a.st.scopeCheck.Store(int64(status))
	return true
}

// post sends one FHIR body and counts the answer: 2xx accepted, 4xx
// refused, anything else failed; a refusal other than expected is logged.
// It returns the status, 0 when there was none.
func (a *fhirApp) post(ctx context.Context, url, token string, body []byte, expected int) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil || ctx.Err() != nil { // a tick and the stop together: the stop wins
		return 0
	}
	req.Header.Set("Content-Type", fhir.ContentType)
	req.Header.Set("Accept", fhir.ContentType)
	req.Header.Set("Authorization", "Bearer "+token)
	a.st.appsSent.Add(1)
	resp, err := a.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			a.st.appsFailed.Add(1)
			a.warnOnce(0, "app: careflow not answering; the app posts again at its next reading", "url", url, "err", err)
		}
		return 0
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		a.st.appsAccepted.Add(1)
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		a.st.appsRefused.Add(1)
		if resp.StatusCode != expected {
			a.warnOnce(resp.StatusCode, "app: careflow refused a write", "url", url, "status", resp.StatusCode, "outcome", diagnostics(out))
		}
	default:
		a.st.appsFailed.Add(1)
		a.warnOnce(resp.StatusCode, "app: careflow failed a write", "url", url, "status", resp.StatusCode, "outcome", diagnostics(out))
	}
	return resp.StatusCode
}

// warnOnce logs the first of each kind of trouble (by status; 0 for no
// answer), so a demo without careflow does not fill the terminal.
func (a *fhirApp) warnOnce(status int, msg string, args ...any) {
	if a.warned[status] {
		return
	}
	a.warned[status] = true
	a.log.Warn(msg, args...)
}

// diagnostics are an OperationOutcome's issues as code, expression and
// careflow's diagnostics, which never quote what was sent.
func diagnostics(oo []byte) string {
	var doc struct {
		Issue []struct {
			Code        string   `json:"code"`
			Expression  []string `json:"expression"`
			Diagnostics string   `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(oo, &doc) != nil || len(doc.Issue) == 0 {
		return "no OperationOutcome"
	}
	i := doc.Issue[0]
	s := i.Code
	if len(i.Expression) > 0 {
		s += " at " + i.Expression[0]
	}
	return s + ": " + i.Diagnostics
}

// appBundle is the app's transaction: p's Patient, PUT conditionally on
// the NHS number, and the reading's Observation (POST), whose subject is
// the Patient's urn:uuid.
func appBundle(p person, r reading, value int, now time.Time, systems *fhir.Systems) ([]byte, error) {
	nhsSystem := systems.SearchURI("NHS")
	pat := &ppb.Patient{
		Identifier: []*dpb.Identifier{
			identifier(nhsSystem, p.nhs, "NH"),
			identifier(systems.SearchURI(authority), p.mrn, "MR"),
		},
		Name: []*dpb.HumanName{{Family: &dpb.String{Value: p.family}, Given: []*dpb.String{{Value: p.given}}}},
	}
	if g, ok := appGenders[p.sex]; ok {
		pat.Gender = &ppb.Patient_GenderCode{Value: g}
	}
	if d, err := time.Parse("20060102", p.birthDate); err == nil {
		pat.BirthDate = &dpb.Date{ValueUs: d.UnixMicro(), Timezone: "UTC", Precision: dpb.Date_DAY}
	}
	patURL, obsURL := "urn:uuid:"+newUUID(), "urn:uuid:"+newUUID()
	obs, err := observation(r, value, now, &dpb.Reference{Reference: &dpb.Reference_Uri{Uri: &dpb.String{Value: patURL}}})
	if err != nil {
		return nil, err
	}
	b := &bcrpb.Bundle{
		Type: &bcrpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_TRANSACTION},
		Entry: []*bcrpb.Bundle_Entry{
			{
				FullUrl:  &dpb.Uri{Value: patURL},
				Resource: &bcrpb.ContainedResource{OneofResource: &bcrpb.ContainedResource_Patient{Patient: pat}},
				Request:  request(cpb.HTTPVerbCode_PUT, "Patient?identifier="+nhsSystem+"|"+p.nhs),
			},
			{
				FullUrl:  &dpb.Uri{Value: obsURL},
				Resource: &bcrpb.ContainedResource{OneofResource: &bcrpb.ContainedResource_Observation{Observation: obs}},
				Request:  request(cpb.HTTPVerbCode_POST, "Observation"),
			},
		},
	}
	return fhir.JSON(b)
}

var appGenders = map[string]cpb.AdministrativeGenderCode_Value{
	"F": cpb.AdministrativeGenderCode_FEMALE, "M": cpb.AdministrativeGenderCode_MALE, "U": cpb.AdministrativeGenderCode_UNKNOWN,
}

// observation is one final vital-signs reading of r at now, about subject.
func observation(r reading, value int, now time.Time, subject *dpb.Reference) (*opb.Observation, error) {
	if r.code == "" {
		return nil, fmt.Errorf("demo: a reading without a LOINC code")
	}
	return &opb.Observation{
		Status: &opb.Observation_StatusCode{Value: cpb.ObservationStatusCode_FINAL},
		Category: []*dpb.CodeableConcept{{Coding: []*dpb.Coding{{
			System: &dpb.Uri{Value: categorySystem}, Code: &dpb.Code{Value: "vital-signs"},
		}}}},
		Code: &dpb.CodeableConcept{Coding: []*dpb.Coding{{
			System: &dpb.Uri{Value: loincSystem}, Code: &dpb.Code{Value: r.code}, Display: &dpb.String{Value: r.display},
		}}},
		Subject: subject,
		Effective: &opb.Observation_EffectiveX{Choice: &opb.Observation_EffectiveX_DateTime{DateTime: &dpb.DateTime{
			ValueUs: now.Truncate(time.Second).UnixMicro(), Timezone: "UTC", Precision: dpb.DateTime_SECOND,
		}}},
		Value: &opb.Observation_ValueX{Choice: &opb.Observation_ValueX_Quantity{Quantity: &dpb.Quantity{
			Value: &dpb.Decimal{Value: strconv.Itoa(value)}, Unit: &dpb.String{Value: r.unit},
			System: &dpb.Uri{Value: ucumSystem}, Code: &dpb.Code{Value: r.ucum},
		}}},
	}, nil
}

func identifier(system, value, typeCode string) *dpb.Identifier {
	return &dpb.Identifier{
		System: &dpb.Uri{Value: system}, Value: &dpb.String{Value: value},
		Type: &dpb.CodeableConcept{Coding: []*dpb.Coding{{System: &dpb.Uri{Value: identifierTypes}, Code: &dpb.Code{Value: typeCode}}}},
	}
}

func request(method cpb.HTTPVerbCode_Value, url string) *bcrpb.Bundle_Entry_Request {
	return &bcrpb.Bundle_Entry_Request{Method: &bcrpb.Bundle_Entry_Request_MethodCode{Value: method}, Url: &dpb.Uri{Value: url}}
}

// newUUID is a random (version 4) UUID, for a Bundle entry's fullUrl.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
