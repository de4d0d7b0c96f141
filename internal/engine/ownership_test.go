package engine_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/connectors/hl7v2"
	"github.com/careflow-health/careflow/connectors/mllp"
	"github.com/careflow-health/careflow/internal/await"
	"github.com/careflow-health/careflow/internal/freeport"
	"github.com/careflow-health/careflow/stages/route"
	"github.com/careflow-health/careflow/topics"
)

// ownershipYAML is an EHR over MLLP, the portal over HTTP, and the lab
// taking A31 from both; the EHR owns the address, both own the telecom.
const ownershipYAML = `
kafka: {partitions: 3}
admin: {listen: %[1]s}
http: {listen: %[2]s}
identity:
  trust:
    - {type: NH, authority: NHS, check: nhs}
inbound:
  - {name: ehr, transport: mllp, listen: %[3]s}
  - name: portal-updates
    transport: http
    trust:
      - {type: NH, authority: NHS, check: nhs}
      - {type: PI, authority: PORTAL}
    accept: {message_types: ["ADT^A31"]}
destinations:
  - {name: lab, transport: mllp, address: %[4]s, format: hl7v2, hl7_version: "2.5.1", retry: {initial: 50ms, max: 500ms, multiplier: 2}}
routes:
  - name: adt-to-lab
    destination: lab
    when: 'event.message_type == "ADT" && event.trigger_event == "A31"'
ownership:
  version: 1
  demographics:
    address: {owners: [ehr], others: strip}
    telecom: {owners: [ehr, portal-updates], others: strip}
`

// a31 is an A31 for the patient with NHS number 9434765919, from sender
// (EHR or PORTAL, whose own number it also carries), with an address and
// a mobile number.
func a31(sender, localID, control, street, phone string) []byte {
	return []byte(strings.Join([]string{
		"MSH|^~\\&|" + sender + "|HOSP|CAREFLOW|HOSP|20240301120000||ADT^A31^ADT_A05|" + control + "|P|2.5.1",
		"EVN|A31|20240301120000",
		"PID|1||" + localID + "~9434765919^^^NHS^NH||DOE^JANE||19800101|F|||" + street + "^^LEEDS^^LS1 1AA^GBR||" + phone + "^PRN^CP",
		"PV1|1|N",
	}, "\r") + "\r")
}

// The portal changes the patient's telecom, which it owns, and address,
// which only the EHR does: the lab receives the portal's number and no
// address from it, and careflow.outcomes says field_not_owned for
// demographics.address. The EHR's own update, before, delivers both.
func TestOwnershipPortalUpdates(t *testing.T) {
	admin, httpAddr, ehrAddr, labAddr := freeport.For(t), freeport.For(t), freeport.For(t), freeport.For(t)
	path := filepath.Join(t.TempDir(), "careflow.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, ownershipYAML, admin, httpAddr, ehrAddr, labAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.WithExprCheck(func(s string) error { _, err := route.Compile(s); return err }))
	if err != nil {
		t.Fatal(err)
	}
	lab := startReceiver(t, labAddr)
	eng := startEngine(t, cfg, t.TempDir())

	c := &mllp.Client{Addr: ehrAddr, ACKTimeout: 10 * time.Second}
	defer c.Close()
	if ack := send(t, c, a31("EHR", "100^^^HOSP^MR", "E1", "1 HIGH ST", "07700 900001")); ack.Code != hl7v2.AckAA {
		t.Fatalf("EHR A31: ACK %s", ack.Code)
	}
	describe := func(m *hl7v2.Message) string { return m.Get("PID-11.1") + ":" + m.Get("PID-13.1") }
	// The EHR's update first, so that the portal's follows it.
	await.For(t, 30*time.Second, 20*time.Millisecond, func() error {
		if len(lab.messages()) != 1 {
			return fmt.Errorf("lab has %d messages, want 1", len(lab.messages()))
		}
		return nil
	})
	resp, err := http.Post("http://"+httpAddr+"/hl7/portal-updates", "x-application/hl7-v2+er7",
		bytes.NewReader(a31("PORTAL", "P77^^^PORTAL^PI", "PU1", "9 NEW ROAD", "07700 900002")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ack, err := hl7v2.ParseACK(body); resp.StatusCode != http.StatusOK || err != nil || ack.Code != hl7v2.AckAA {
		t.Fatalf("POST /hl7/portal-updates: %d %q", resp.StatusCode, body)
	}
	await.For(t, 30*time.Second, 20*time.Millisecond, func() error {
		var got []string
		for _, m := range lab.messages() {
			got = append(got, describe(m))
		}
		want := []string{"1 HIGH ST:07700 900001", ":07700 900002"}
		if !slices.Equal(got, want) {
			return fmt.Errorf("lab has (address:telecom) %q, want %q", got, want)
		}
		return nil
	})
	// Both keyed by the NHS number: one partition, one order.
	msgs := lab.messages()
	if got := msgs[1].Get("PID-3[2].1"); got != "9434765919" {
		t.Errorf("portal update's PID-3[2] = %q", got)
	}

	// The outcome: one warning at normalise for the address, none for
	// the telecom, naming the field and the sender, not the value.
	await.For(t, 30*time.Second, 50*time.Millisecond, func() error {
		var notOwned []avro.DeliveryOutcome
		for _, r := range readTopic(t, eng.Brokers(), topics.Outcomes, 1, time.Second) {
			var o avro.DeliveryOutcome
			if err := eng.Serde().Decode(r.Value, &o); err != nil {
				return err
			}
			if o.ErrorCode == "field_not_owned" {
				notOwned = append(notOwned, o)
			}
		}
		if len(notOwned) != 1 {
			return fmt.Errorf("%d field_not_owned outcomes, want 1: %+v", len(notOwned), notOwned)
		}
		o := notOwned[0]
		if o.ErrorLocation != "demographics.address" || o.Interface != "portal-updates" || o.Status != avro.StatusWarning || o.Stage != topics.StageNormalise {
			t.Fatalf("outcome %+v, want a normalise warning for demographics.address from portal-updates", o)
		}
		if strings.Contains(o.ErrorText, "NEW ROAD") || strings.Contains(o.ErrorText, "07700") {
			t.Fatalf("outcome text %q holds patient data", o.ErrorText)
		}
		return nil
	})
}
