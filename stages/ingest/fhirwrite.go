// This file makes a FHIR write durable: it plans each interaction under
// the locks of what it reads and writes, then stores the raw record and
// every resource's new version in one Kafka transaction, so that a write
// is stored whole or not at all, and a 503 means nothing was kept.

package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/connectors/fhir"
	"github.com/careflow-health/careflow/stages/identity"
)

// target is what an interaction's condition found, before it is planned.
type target struct {
	found    *storedResource // the one match of a conditional create or update
	existing bool            // a conditional create matched: nothing is written
}

// write plans and stores its interactions: one raw record for the lot (a
// transaction's is the Bundle as sent, bundle; a single write's, its
// body) and each resource's new version, in one Kafka transaction.
//
// Locks come in two phases, so that two writes cannot deadlock: first the
// searches of conditional operations (by the normalised search, so two
// spellings of one are one lock), then every resource read or written
// (named by the URL, found by a search, or given in a conditional
// update's body), each phase in stripe order. Plans read versions only
// once both are held.
func (s *Stage) write(ctx context.Context, rc receipt, its []interaction, bundle []byte) ([]plan, *fhirError) {
	in := rc.in
	var searches []string
	toks := make([]*fhir.Identifier, len(its))
	for i, it := range its {
		q, what := it.ifNoneExist, "If-None-Exist"
		if it.conditional != "" {
			q, what = it.conditional, "the conditional update"
		} else if it.method != "create" {
			q = ""
		}
		if q == "" {
			continue
		}
		tok, fe := parseSearch(it.typ, q, what)
		if fe != nil {
			return nil, fe
		}
		toks[i] = &tok
		searches = append(searches, searchKey(in.Name, it.typ, tok.Token()))
	}
	defer s.fhir.searchLocks.lock(searches...)()
	targets := make([]target, len(its))
	var resources []string
	for i, it := range its {
		if toks[i] != nil {
			found := s.fhir.find(in.Name, it.typ, *toks[i])
			if len(found) > 1 {
				return nil, refuseFHIR(http.StatusPreconditionFailed, fhir.CodeMultipleMatches, "",
					fmt.Sprintf("the search %s matches %d %s resources", toks[i].Token(), len(found), it.typ))
			}
			if len(found) == 1 {
				targets[i] = target{found: found[0], existing: it.conditional == ""}
				resources = append(resources, found[0].key())
			}
		}
		if it.id != "" {
			resources = append(resources, resourceKey(in.Name, it.typ, it.id))
		} else if it.conditional != "" && it.res.ID() != "" {
			resources = append(resources, resourceKey(in.Name, it.typ, it.res.ID()))
		}
	}
	defer s.fhir.resourceLocks.lock(resources...)()

	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	plans := make([]plan, len(its))
	refs := map[string]string{} // a Bundle's fullUrls → Type/id
	planned := map[string]int{}
	for i, it := range its {
		p, fe := s.plan(in, it, targets[i], now)
		if fe != nil {
			return nil, fe
		}
		if !p.existing {
			if j, dup := planned[p.stored.key()]; dup {
				return nil, refuseFHIR(http.StatusBadRequest, fhir.CodeDuplicate, fmt.Sprintf("Bundle.entry[%d]", i),
					fmt.Sprintf("entries %d and %d write the same %s; a transaction writes each resource once", j, i, it.typ))
			}
			planned[p.stored.key()] = i
		}
		plans[i] = p
		if it.fullURL != "" {
			refs[it.fullURL] = p.stored.Type + "/" + p.stored.ID
		}
	}
	if len(planned) == 0 {
		return plans, nil // every entry matched what is stored: nothing to write
	}
	var related []json.RawMessage
	for i, it := range its {
		if plans[i].existing {
			continue
		}
		body, err := fhir.RewriteReferences(it.body, refs)
		if err == nil {
			body, err = fhir.SetMeta(body, plans[i].stored.ID, plans[i].stored.Version, now)
		}
		if err != nil {
			return nil, &fhirError{status: http.StatusInternalServerError, err: err}
		}
		plans[i].stored.Resource = body
		if bundle != nil {
			related = append(related, body)
		}
	}
	rel, key, fe := s.resolve(in, its, plans)
	if fe != nil {
		return nil, fe
	}
	related = append(related, rel...)
	raw := s.fhirRaw(rc, its, plans, bundle, related, key, now)
	recs, err := s.fhirRecords(raw, plans)
	if err == nil {
		err = s.fhirTx.commit(ctx, recs)
	}
	if err != nil {
		s.log.Warn("ingest write to Kafka, answering 503", "interface", in.Name, "transport", rc.transport, "message_id", raw.MessageID, "err", err)
		s.metrics.messages.WithLabelValues(in.Name, resultError).Inc()
		return nil, refuseFHIR(http.StatusServiceUnavailable, fhir.CodeTransient, "", "not stored (nothing of it was kept); resend it")
	}
	for _, p := range plans {
		if !p.existing {
			s.fhir.put(p.stored)
		}
	}
	s.metrics.messages.WithLabelValues(in.Name, resultAccepted).Inc()
	s.metrics.ackSeconds.WithLabelValues(in.Name).Observe(time.Since(rc.start).Seconds())
	s.log.Debug("ingest accepted a FHIR write", "interface", in.Name, "message_id", raw.MessageID, "type", raw.MessageType, "control_id", raw.ControlID)
	return plans, nil
}

// fhirRecords are a write's records: the raw one, then each resource's.
func (s *Stage) fhirRecords(raw *avro.RawMessage, plans []plan) ([]*kgo.Record, error) {
	rec, err := s.rawRecord(raw)
	if err != nil {
		return nil, err
	}
	recs := []*kgo.Record{rec}
	for _, p := range plans {
		if p.existing {
			continue
		}
		r, err := p.stored.record()
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// writtenKey is a write's idempotency key: the versions it stored, so a
// resend of the same write (it is refused by If-Match, or stores nothing
// new) never passes twice, and no two writes share one.
func writtenKey(iface string, plans []plan) string {
	var locs []string
	for _, p := range plans {
		if !p.existing {
			locs = append(locs, location(p.stored))
		}
	}
	slices.Sort(locs)
	k := strings.Join(locs, ",")
	if len(locs) > 1 {
		sum := sha256.Sum256([]byte(k))
		k = "Bundle/" + hex.EncodeToString(sum[:16])
	}
	return "fhir|" + iface + "|" + k
}

// plan decides the resource and version one interaction writes, once the
// locks are held: it reads the current version of what it updates.
func (s *Stage) plan(in *Interface, it interaction, t target, now time.Time) (plan, *fhirError) {
	var cur *storedResource
	switch {
	case t.existing:
		return plan{stored: s.fhir.get(in.Name, it.typ, t.found.ID), existing: true}, nil
	case t.found != nil:
		cur = s.fhir.get(in.Name, it.typ, t.found.ID)
	case it.id != "":
		cur = s.fhir.get(in.Name, it.typ, it.id)
	}
	if it.ifMatch != "" && (cur == nil || cur.ETag() != normaliseETag(it.ifMatch)) {
		have := "none"
		if cur != nil {
			have = cur.ETag()
		}
		return plan{}, refuseFHIR(http.StatusPreconditionFailed, fhir.CodeConflict, "",
			fmt.Sprintf("If-Match %s is not the current version (%s)", it.ifMatch, have))
	}
	st := &storedResource{Interface: in.Name, Type: it.typ, Version: 1, LastUpdated: now, Identifiers: fhir.Identifiers(it.body)}
	switch {
	case cur != nil:
		st.ID, st.Version = cur.ID, cur.Version+1
	case it.id != "":
		st.ID = it.id // update as create (R4 3.1.0.4.1)
	case it.conditional != "" && it.res.ID() != "":
		// A conditional update that matched nothing creates the resource,
		// with the body's id, unless that id is another resource's.
		if s.fhir.get(in.Name, it.typ, it.res.ID()) != nil {
			return plan{}, refuseFHIR(http.StatusBadRequest, fhir.CodeConflict, it.typ+".id",
				"the conditional update matched nothing, but the body's id names a resource the search did not find")
		}
		st.ID = it.res.ID()
	default:
		st.ID = identity.NewMessageID()
	}
	return plan{stored: st, created: cur == nil}, nil
}

// normaliseETag reads an If-Match as a weak entity tag: W/"3", "3" or 3.
func normaliseETag(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	return `W/"` + strings.Trim(v, `"`) + `"`
}

// parseSearch reads a conditional operation's search: identifier=TOKEN,
// the one search careflow supports, with or without the type before it
// (Patient?identifier=…, as some clients write If-None-Exist).
func parseSearch(typ, query, what string) (fhir.Identifier, *fhirError) {
	query = strings.TrimPrefix(query, typ+"?")
	raw, ok := strings.CutPrefix(query, "identifier=")
	if !ok || strings.Contains(raw, "&") || raw == "" {
		return fhir.Identifier{}, refuseFHIR(http.StatusBadRequest, fhir.CodeNotSupported, "", what+" must be identifier=system|value, the only search careflow takes")
	}
	// A query's escapes (%7C) first, then the token's own (\|).
	if t, err := unescapeQuery(raw); err == nil {
		raw = t
	}
	return fhir.ParseToken(raw), nil
}

// errNoFHIRWriter is Config.Kafka left out while an interface is FHIR.
var errNoFHIRWriter = errors.New("FHIR interfaces need Config.Kafka: their writes are Kafka transactions")
