package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/connectors/httpx"
	"github.com/careflow-health/careflow/internal/await"
)

func demoPerson(t *testing.T) person {
	t.Helper()
	g := newEHRGenerator(3, "T7", 1)
	g.patients[0].registered = true
	reg := &registry{}
	reg.sync(g.patients)
	p, ok := reg.pick(g.rng)
	if !ok {
		t.Fatal("a registered patient is not in the registry")
	}
	return p
}

// The app's Bundle, for each kind of reading, is valid FHIR R4 by
// google/fhir's unmarshaller, is a transaction whose Patient is PUT on
// the NHS number and carries the MRN under the HOSP system, and whose
// Observation refers to the Patient's urn:uuid.
func TestAppBundleValidates(t *testing.T) {
	p := demoPerson(t)
	now := time.Date(2025, 3, 1, 8, 30, 15, 0, time.UTC)
	for _, r := range readings {
		t.Run(r.code, func(t *testing.T) {
			b, err := appBundle(p, r, r.lo, now, fhir.NewSystems(nil))
			if err != nil {
				t.Fatal(err)
			}
			if validR4(t, "the app's Bundle", b)["type"] != "transaction" {
				t.Fatal("not a transaction")
			}
			res, err := fhir.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := fhir.Entries(res) // careflow's own reading of a transaction
			if err != nil || len(entries) != 2 {
				t.Fatalf("Entries = %d entries, %v", len(entries), err)
			}
			pat, obs := entries[0], entries[1]
			patJSON, _ := fhir.JSON(pat.Resource.Message())
			obsJSON, _ := fhir.JSON(obs.Resource.Message())
			if pat.Resource.Type() != "Patient" || pat.Method != "PUT" || pat.URL != "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|"+p.nhs {
				t.Errorf("Patient entry %s %s %s", pat.Resource.Type(), pat.Method, pat.URL)
			}
			ids := map[string]fhir.Identifier{}
			for _, id := range fhir.Identifiers(patJSON) {
				ids[id.Type] = id
			}
			if ids["NH"] != (fhir.Identifier{System: "https://fhir.nhs.uk/Id/nhs-number", Value: p.nhs, Type: "NH"}) ||
				ids["MR"] != (fhir.Identifier{System: "urn:careflow:authority:HOSP", Value: p.mrn, Type: "MR"}) {
				t.Errorf("Patient identifiers %+v", ids)
			}
			if obs.Resource.Type() != "Observation" || obs.Method != "POST" || obs.URL != "Observation" {
				t.Errorf("Observation entry %s %s %s", obs.Resource.Type(), obs.Method, obs.URL)
			}
			refs := fhir.References(obsJSON)
			if len(refs) != 1 || refs[0].Path != "Observation.subject" || refs[0].Reference != pat.FullURL || !strings.HasPrefix(pat.FullURL, "urn:uuid:") {
				t.Errorf("Observation references %+v, want its subject the Patient's fullUrl %s", refs, pat.FullURL)
			}
			var o struct {
				Status string `json:"status"`
				Code   struct {
					Coding []struct{ System, Code string } `json:"coding"`
				} `json:"code"`
				Effective string `json:"effectiveDateTime"`
				Quantity  struct {
					Value  json.Number `json:"value"`
					System string      `json:"system"`
					Code   string      `json:"code"`
				} `json:"valueQuantity"`
			}
			if err := json.Unmarshal(obsJSON, &o); err != nil {
				t.Fatal(err)
			}
			if o.Status != "final" || o.Code.Coding[0] != (struct{ System, Code string }{"http://loinc.org", r.code}) ||
				o.Quantity.System != "http://unitsofmeasure.org" || o.Quantity.Code != r.ucum || o.Quantity.Value.String() != fmt.Sprint(r.lo) ||
				o.Effective != "2025-03-01T08:30:15+00:00" {
				t.Errorf("Observation %+v", o)
			}
		})
	}
}

// standIn is careflow's apps interface as far as the app can tell: it
// verifies the bearer JWT against the IdP's JWKS URL, wants
// careflow/apps.write and each entry's SMART scope, and gives a
// transaction to the demo FHIR store to answer.
func standIn(t *testing.T, idp *IdP, store *fhirStore) *httptest.Server {
	v := verifier(t, idp)
	allowed := func(w http.ResponseWriter, r *http.Request, need map[string]string) bool {
		tok, err := httpx.BearerToken(r)
		if err != nil {
			http.Error(w, "no token", http.StatusUnauthorized)
			return false
		}
		c, err := v.Verify(r.Context(), tok)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return false
		}
		if !c.HasScope("careflow/apps.write") {
			http.Error(w, "no interface scope", http.StatusForbidden)
			return false
		}
		for typ, interaction := range need {
			if !fhir.ScopeAllows(c.Scopes, typ, interaction) {
				http.Error(w, "no scope for "+typ, http.StatusForbidden)
				return false
			}
		}
		return true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fhir/apps/Observation", func(w http.ResponseWriter, r *http.Request) {
		if allowed(w, r, map[string]string{"Observation": "create"}) {
			w.WriteHeader(http.StatusCreated)
		}
	})
	mux.HandleFunc("POST /fhir/apps", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := fhir.Decode(body)
		var entries []fhir.Entry
		if err == nil {
			entries, err = fhir.Entries(res)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		need := map[string]string{}
		for _, e := range entries {
			need[e.Resource.Type()] = map[string]string{"PUT": "update", "POST": "create"}[e.Method]
		}
		if !allowed(w, r, need) {
			return
		}
		resp, serr := store.transaction(body)
		if serr != nil {
			w.WriteHeader(serr.status)
			w.Write(fhir.OperationOutcome(serr.err))
			return
		}
		w.Write(resp)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// The app's scope check is refused 403 and counted; its readings, with
// the full scopes, are accepted, and the store keeps the patient once.
func TestAppPostsWithScopes(t *testing.T) {
	idp := startIdP(t)
	st := &stats{}
	store := newFHIRStore(&stats{})
	srv := standIn(t, idp, store)
	reg := &registry{}
	reg.people = []person{demoPerson(t)}
	app := newFHIRApp(srv.URL+"/fhir/"+AppsInterface, idp, st, reg, quiet, 5*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.run(ctx) }()
	await.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := st.appsAccepted.Load(); n < 3 {
			return fmt.Errorf("%d readings accepted", n)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v", err)
	}
	if st.scopeCheck.Load() != http.StatusForbidden || st.appsRefused.Load() != 1 || st.appsFailed.Load() != 0 {
		t.Errorf("scope check answered %d; %d refused, %d failed; want 403, 1 refused, none failed",
			st.scopeCheck.Load(), st.appsRefused.Load(), st.appsFailed.Load())
	}
	// Every reading was accepted, but for one the stop may have cut short.
	if sent, acc := st.appsSent.Load(), st.appsAccepted.Load(); sent-1-acc > 1 {
		t.Errorf("sent %d, accepted %d: want every reading accepted", sent, acc)
	}
	store.mu.Lock()
	patients, observations := len(store.byType["Patient"]), len(store.byType["Observation"])
	store.mu.Unlock()
	if acc := st.appsAccepted.Load(); patients != 1 || int64(observations) < acc || int64(observations) > acc+1 {
		t.Errorf("store holds %d Patients, %d Observations; want 1 and %d", patients, observations, acc)
	}
}

// Without careflow the app counts its posts failed and keeps going.
func TestAppWithoutCareflow(t *testing.T) {
	idp := startIdP(t)
	st := &stats{}
	reg := &registry{people: []person{demoPerson(t)}}
	app := newFHIRApp("http://127.0.0.1:1/fhir/apps", idp, st, reg, quiet, 5*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.run(ctx) }()
	await.For(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := st.appsFailed.Load(); n < 4 {
			return fmt.Errorf("%d failed", n)
		}
		return nil
	})
	cancel()
	<-done
	if st.scopeCheck.Load() != 0 || st.appsAccepted.Load() != 0 {
		t.Errorf("scope check %d, accepted %d without careflow", st.scopeCheck.Load(), st.appsAccepted.Load())
	}
}
