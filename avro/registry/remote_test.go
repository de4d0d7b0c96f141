package registry_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
)

var _ avro.Registry = (*registry.Remote)(nil)

// TestSerdeOverRemote runs the serde against a Remote talking HTTP to a
// Store, the way a careflow process uses a registry on another host.
func TestSerdeOverRemote(t *testing.T) {
	ctx := context.Background()
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(store)
	defer srv.Close()
	remote, err := registry.NewRemote(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	serde, err := avro.NewSerde(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	// The schemas are in the store under their record names.
	for name, text := range avro.Schemas() {
		id, err := store.Register(ctx, name, text)
		if err != nil {
			t.Fatalf("%s not registered under its name: %v", name, err)
		}
		var v any
		switch name {
		case avro.NameRawMessage:
			v = &avro.RawMessage{}
		case avro.NameClinicalEvent:
			v = &avro.ClinicalEvent{}
		case avro.NameDeliveryOutcome:
			v = &avro.DeliveryOutcome{}
		case avro.NameDeadLetter:
			v = &avro.DeadLetter{}
		case avro.NameAuditEvent:
			v = &avro.AuditEvent{}
		case avro.NameException:
			v = &avro.Exception{}
		case avro.NameOrderTransition:
			v = &avro.OrderTransition{}
		case avro.NameReview:
			v = &avro.Review{}
		}
		if serde.SchemaID(v) != id {
			t.Errorf("%s: serde id %d, store id %d", name, serde.SchemaID(v), id)
		}
	}

	want := avro.DeliveryOutcome{OutcomeID: "o1", Status: avro.StatusDelivered, Attempt: 1, At: time.UnixMilli(1741944414001).UTC()}
	b, err := serde.Encode(&want)
	if err != nil {
		t.Fatal(err)
	}
	var got avro.DeliveryOutcome
	if err := serde.Decode(b, &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip over remote: %+v, %v", got, err)
	}

	// A record written by another producer with an older schema version:
	// the serde fetches that schema over HTTP.
	old := `{"type":"record","name":"DeliveryOutcome","namespace":"careflow","fields":[
		{"name":"outcome_id","type":"string","default":""},{"name":"status","type":"string","default":""}]}`
	cl, err := sr.NewClient(sr.URLs(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	oldID, err := cl.RegisterSchema(ctx, avro.NameDeliveryOutcome, sr.Schema{Schema: old}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(old)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = new(sr.ConfluentHeader).AppendEncode(nil, oldID, nil)
	if b, err = codec.BinaryFromNative(b, map[string]any{"outcome_id": "o2", "status": "retrying"}); err != nil {
		t.Fatal(err)
	}
	if err := serde.Decode(b, &got); err != nil || !reflect.DeepEqual(got, avro.DeliveryOutcome{OutcomeID: "o2", Status: "retrying"}) {
		t.Fatalf("older record over remote: %+v, %v", got, err)
	}

	// An id the registry does not have: typed error carrying the
	// registry's 40403.
	b[4] = 99
	var unknown *avro.UnknownSchemaError
	var re *sr.ResponseError
	if err := serde.Decode(b, &got); !errors.As(err, &unknown) || unknown.ID != 99 || !errors.As(err, &re) || re.ErrorCode != 40403 {
		t.Fatalf("unknown id over remote: %v", err)
	}
}
