package console

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/careflow-health/careflow/analytics"
	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
	"github.com/careflow-health/careflow/config"
	"github.com/careflow-health/careflow/topics"
)

func TestOwnSteps(t *testing.T) {
	step := func(id, stage, dest string) analytics.Step {
		var s analytics.Step
		s.MessageID, s.Stage, s.Destination = id, stage, dest
		return s
	}
	own, related := ownSteps("ORM1", []analytics.Step{
		step("ORM1", "ingest", ""), step("ORM1", "deliver", "lab"), step("ORU1", "deliver", "ehr-results"),
		step("ORU2", "route", ""), step("ORU1", "route", ""),
	})
	if len(own) != 2 || own[1].Destination != "lab" || strings.Join(related, ",") != "ORU1,ORU2" {
		t.Fatalf("own %+v, related %v", own, related)
	}
}

// Each destination's form is rendered from its own copy of the event: a
// fields profile that strips the first destination's copy leaves the
// second's whole.
func TestFormsRenderEachDestinationFromItsOwnCopy(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topics.Events))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	serde, err := avro.NewSerde(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ev := avro.ClinicalEvent{EventID: "E1", MessageType: "ADT", TriggerEvent: "A01"}
	ev.Patient.FamilyName = "DOE"
	b, err := serde.Encode(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Events, Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	c := &Console{cfg: Config{Estate: &cfg, Kafka: opts, Serde: serde,
		Render: func(dest string, ev *avro.ClinicalEvent) ([]byte, error) {
			out := dest + ":" + ev.Patient.FamilyName
			if dest == "lab" {
				ev.Patient.FamilyName = "" // the lab's profile leaves the name out
			}
			return []byte(out), nil
		}}}
	var steps []analytics.Step
	for _, d := range []string{"lab", "portal"} {
		var s analytics.Step
		s.MessageID, s.Destination = "E1", d
		steps = append(steps, s)
	}
	forms, problems := c.forms(ctx, analytics.Message{MessageID: "E1", Event: analytics.Source{Topic: topics.Events}}, steps, nil)
	got := map[string]string{}
	for _, f := range forms {
		got[f.Name] = f.Body
	}
	if len(problems) != 0 || got["Rendered for lab"] != "lab:DOE" || got["Rendered for portal"] != "portal:DOE" ||
		!strings.Contains(got["Canonical (careflow.events)"], "DOE") {
		t.Fatalf("forms %v, problems %v", got, problems)
	}
}
