// This file counts what the simulated systems sent and received, and prints
// the live per-flow summary `careflow demo` shows.

package demo

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/careflow-health/careflow/connectors/hl7v2"
)

// stats are the demo's counters, shared by every simulated system.
type stats struct {
	ehrSent, ehrACKed, ehrNAKed, ehrFailed atomic.Int64

	labReceived, labOrders, labRedelivered, labUnparseable atomic.Int64

	resultsSent, resultsACKed, resultsNAKed, resultsFailed, resultsEarly atomic.Int64

	ehrResultsReceived, ehrResultsUnparseable atomic.Int64

	portalReceived, portalBad atomic.Int64

	portalUpdatesSent, portalUpdatesACKed, portalUpdatesNAKed, portalUpdatesFailed atomic.Int64

	appAA, appAE, notifyUnparseable atomic.Int64

	// The FHIR app's writes: answered 2xx, 4xx, or not at all (or 5xx).
	// scopeCheck is the HTTP status of its one write without
	// system/Observation.write (0 until answered); that write is counted
	// in appsSent and appsRefused too.
	appsSent, appsAccepted, appsRefused, appsFailed, scopeCheck atomic.Int64

	storeBundles, storeRefused atomic.Int64

	mu            sync.Mutex
	notifications map[string]int // by ERR-5 code
	storeTypes    map[string]int // resources the FHIR store holds, by type
}

// storeCreated counts a resource new to the FHIR store.
func (s *stats) storeCreated(typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.storeTypes == nil {
		s.storeTypes = map[string]int{}
	}
	s.storeTypes[typ]++
}

// notified counts one message on ehr-notifications: an ACK is an
// application acknowledgement, anything else a return notification.
func (s *stats) notified(msgType, code, reason string) {
	if msgType == "ACK" && reason != "stale_update" {
		if code == "AA" {
			s.appAA.Add(1)
		} else {
			s.appAE.Add(1)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notifications == nil {
		s.notifications = map[string]int{}
	}
	s.notifications[reason]++
}

// countACK parses reply and counts it as accepted (AA, CA) or not.
func countACK(reply []byte, accepted, rejected *atomic.Int64) bool {
	a, err := hl7v2.ParseACK(reply)
	if err != nil || !a.Code.Accepted() {
		rejected.Add(1)
		return false
	}
	accepted.Add(1)
	return true
}

// print writes one line per flow.
func (s *stats) print(w io.Writer) {
	fmt.Fprintf(w, "EHR -> careflow          sent %6d  ACKed %6d  NAKed %4d  failed %4d\n",
		s.ehrSent.Load(), s.ehrACKed.Load(), s.ehrNAKed.Load(), s.ehrFailed.Load())
	fmt.Fprintf(w, "careflow -> lab          received %6d  (orders %d, redelivered %d, unparseable %d)\n",
		s.labReceived.Load(), s.labOrders.Load(), s.labRedelivered.Load(), s.labUnparseable.Load())
	fmt.Fprintf(w, "lab -> careflow          results sent %6d  ACKed %6d  NAKed %4d  failed %4d  (before their order %d)\n",
		s.resultsSent.Load(), s.resultsACKed.Load(), s.resultsNAKed.Load(), s.resultsFailed.Load(), s.resultsEarly.Load())
	fmt.Fprintf(w, "careflow -> ehr-results  received %6d  (unparseable %d)\n",
		s.ehrResultsReceived.Load(), s.ehrResultsUnparseable.Load())
	fmt.Fprintf(w, "careflow -> portal       received %6d  (rejected %d)\n",
		s.portalReceived.Load(), s.portalBad.Load())
	fmt.Fprintf(w, "portal -> careflow       updates sent %6d  ACKed %6d  NAKed %4d  failed %4d\n",
		s.portalUpdatesSent.Load(), s.portalUpdatesACKed.Load(), s.portalUpdatesNAKed.Load(), s.portalUpdatesFailed.Load())
	s.mu.Lock()
	codes := counts(s.notifications)
	types := counts(s.storeTypes)
	s.mu.Unlock()
	fmt.Fprintf(w, "careflow -> ehr-notif.   application ACKs AA %d  AE %d;  notifications: %s\n",
		s.appAA.Load(), s.appAE.Load(), cmp.Or(strings.Join(codes, ", "), "none"))
	fmt.Fprintf(w, "apps -> careflow         sent %6d  accepted %6d  refused %4d  failed %4d  (scope check: %s)\n",
		s.appsSent.Load(), s.appsAccepted.Load(), s.appsRefused.Load(), s.appsFailed.Load(), scopeCheckText(s.scopeCheck.Load()))
	fmt.Fprintf(w, "careflow -> fhir-store   bundles %6d  (refused %d)  holds %s\n",
		s.storeBundles.Load(), s.storeRefused.Load(), cmp.Or(strings.Join(types, "  "), "nothing yet"))
}

// counts are "key n" for each key of m, sorted.
func counts(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, n := range m {
		out = append(out, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(out)
	return out
}

// scopeCheckText says how careflow answered the app's write without
// system/Observation.write: it must be 403.
func scopeCheckText(status int64) string {
	switch status {
	case 0:
		return "not answered yet"
	case 403:
		return "an Observation without system/Observation.write was refused 403, as it must be"
	}
	return fmt.Sprintf("an Observation without system/Observation.write was answered %d; want 403", status)
}
