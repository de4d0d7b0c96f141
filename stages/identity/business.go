// This file is what makes one clinical event the same event whichever
// standard carried it: its business keys, built from the identifiers the
// sending systems gave it (placer and filler order numbers) and what it
// says, never from careflow's ids or the message's envelope. A result
// sent as an ORU^R01 and again as a FHIR DiagnosticReport has the same
// keys, so route passes it on once.

package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"github.com/careflow-health/careflow/avro"
)

// BusinessKeys are ev's business keys; nil for an event that has none
// (patient administration, whose repeats the source-of-truth matrix and
// ADT sequencing already judge). A result has one key per order number
// it names (placer and filler, with their namespaces), each with a digest
// of its observations' codes, values, statuses and times (to the minute): the same result's two forms share at least
// one, and a corrected value or status is a new key. An order has one
// per order number, with its control code and service.
func BusinessKeys(ev *avro.ClinicalEvent) []string {
	switch ev.EventType {
	case "result":
		return resultKeys(ev)
	case "order":
		var out []string
		for _, o := range ev.Orders {
			what := o.Control + "|" + o.ServiceCode
			if o.PlacerOrderNumber != "" {
				out = append(out, "order|placer|"+number(o.PlacerOrderNumber, o.PlacerNamespace)+"|"+what)
			}
			if o.FillerOrderNumber != "" {
				out = append(out, "order|filler|"+number(o.FillerOrderNumber, o.FillerNamespace)+"|"+what)
			}
		}
		return out
	}
	return nil
}

func resultKeys(ev *avro.ClinicalEvent) []string {
	if len(ev.Observations) == 0 {
		return nil
	}
	obs := make([]string, 0, len(ev.Observations))
	for _, o := range ev.Observations {
		// When it was observed, to the minute: serial readings of one
		// standing order with the same value are different results.
		obs = append(obs, o.Code+"="+canonicalValue(o.Value)+"|"+o.Status+"|"+o.ObservedAt[:min(len(o.ObservedAt), 12)])
	}
	slices.Sort(obs)
	sum := sha256.Sum256([]byte(strings.Join(obs, "\n")))
	digest := hex.EncodeToString(sum[:12])
	var out []string
	for _, o := range ev.Orders {
		if o.PlacerOrderNumber != "" {
			out = append(out, "result|placer|"+number(o.PlacerOrderNumber, o.PlacerNamespace)+"|"+digest)
		}
		if o.FillerOrderNumber != "" {
			out = append(out, "result|filler|"+number(o.FillerOrderNumber, o.FillerNamespace)+"|"+digest)
		}
	}
	return out
}

// number is an order number with its namespace (EI.1^EI.2, the
// namespace upper-cased): two systems' order 1234 are two orders.
func number(value, namespace string) string { return value + "^" + strings.ToUpper(namespace) }

// canonicalValue writes a number one way (5.10 and 5.1 are one value);
// anything else as sent, trimmed.
func canonicalValue(v string) string {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return v
}
