package registry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/careflow-health/careflow/avro/registry"
)

func schemaFile(t *testing.T, name string) sr.Schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return sr.Schema{Schema: string(b), Type: sr.TypeAvro}
}

// serve starts the store's handler at root, under prefix, or ("shared") at
// the root of a mux with other handlers, and returns an sr.Client for it.
func serve(t *testing.T, store *registry.Store, prefix string) *sr.Client {
	t.Helper()
	var h http.Handler = store
	switch prefix {
	case "shared":
		// At root beside other handlers, as on careflow's admin port.
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("metrics")) })
		for _, p := range registry.Paths {
			mux.Handle(p, store)
		}
		h, prefix = mux, ""
	case "":
	default:
		mux := http.NewServeMux()
		mux.Handle(prefix+"/", http.StripPrefix(prefix, store))
		h = mux
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cl, err := sr.NewClient(sr.URLs(srv.URL + prefix))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// errorCode returns the Confluent error code and HTTP status of err.
func errorCode(err error) (code, status int) {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode, re.StatusCode
	}
	return 0, 0
}

func TestHandlerWithSRClient(t *testing.T) {
	for _, prefix := range []string{"", "/registry", "shared"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			store, err := registry.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			testAPI(t, serve(t, store, prefix))
		})
	}
}

func testAPI(t *testing.T, cl *sr.Client) {
	ctx := context.Background()
	v1, v2 := schemaFile(t, "Vitals.v1.avsc"), schemaFile(t, "Vitals.v2.avsc")

	id1, err := cl.RegisterSchema(ctx, "test.Vitals", v1, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	again, err := cl.RegisterSchema(ctx, "test.Vitals", v1, -1, -1)
	if err != nil || again != id1 {
		t.Fatalf("re-register: id %d, err %v; want id %d", again, err, id1)
	}
	other, err := cl.RegisterSchema(ctx, "other-value", v1, -1, -1)
	if err != nil || other != id1 {
		t.Fatalf("same schema under another subject: id %d, err %v; want the same id %d", other, err, id1)
	}
	created, err := cl.CreateSchema(ctx, "test.Vitals", v2)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == id1 || created.Version != 2 || created.Subject != "test.Vitals" {
		t.Fatalf("v2 created as %+v", created)
	}

	got, err := cl.SchemaByID(ctx, id1)
	if err != nil || got.Schema != v1.Schema {
		t.Fatalf("SchemaByID(%d) = %q, %v", id1, got.Schema, err)
	}
	text, err := cl.SchemaTextByID(ctx, created.ID)
	if err != nil || text != v2.Schema {
		t.Fatalf("SchemaTextByID = %q, %v", text, err)
	}
	subjects, err := cl.Subjects(ctx)
	if err != nil || !slices.Equal(subjects, []string{"other-value", "test.Vitals"}) {
		t.Fatalf("Subjects = %v, %v", subjects, err)
	}
	versions, err := cl.SubjectVersions(ctx, "test.Vitals")
	if err != nil || !slices.Equal(versions, []int{1, 2}) {
		t.Fatalf("SubjectVersions = %v, %v", versions, err)
	}
	latest, err := cl.SchemaByVersion(ctx, "test.Vitals", -1)
	if err != nil || latest.Version != 2 || latest.ID != created.ID || latest.Schema.Schema != v2.Schema || latest.Subject != "test.Vitals" {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	first, err := cl.SchemaByVersion(ctx, "test.Vitals", 1)
	if err != nil || first.Version != 1 || first.ID != id1 {
		t.Fatalf("version 1 = %+v, %v", first, err)
	}
	found, err := cl.LookupSchema(ctx, "test.Vitals", v1)
	if err != nil || found.ID != id1 || found.Version != 1 {
		t.Fatalf("LookupSchema = %+v, %v", found, err)
	}
	usages, err := cl.SchemaVersionsByID(ctx, id1)
	if err != nil || len(usages) != 2 {
		t.Fatalf("SchemaVersionsByID = %v, %v", usages, err)
	}
	for _, c := range cl.Compatibility(ctx, "", "test.Vitals") {
		if c.Err != nil || c.Level != sr.CompatBackward {
			t.Fatalf("compatibility of %q = %v, %v", c.Subject, c.Level, c.Err)
		}
	}

	errs := []struct {
		name         string
		call         func() error
		code, status int
	}{
		{"unknown id", func() error { _, err := cl.SchemaByID(ctx, 999); return err }, 40403, 404},
		{"unknown subject versions", func() error { _, err := cl.SubjectVersions(ctx, "nope"); return err }, 40401, 404},
		{"unknown subject latest", func() error { _, err := cl.SchemaByVersion(ctx, "nope", -1); return err }, 40401, 404},
		{"unknown version", func() error { _, err := cl.SchemaByVersion(ctx, "test.Vitals", 9); return err }, 40402, 404},
		{"lookup in unknown subject", func() error { _, err := cl.LookupSchema(ctx, "nope", v1); return err }, 40401, 404},
		{"lookup of unknown schema", func() error {
			_, err := cl.LookupSchema(ctx, "other-value", v2)
			return err
		}, 40403, 404},
		{"invalid schema", func() error {
			_, err := cl.RegisterSchema(ctx, "test.Vitals", sr.Schema{Schema: `{"type":"record","name":"X","fields":[{"name":"a","type":"nosuchtype"}]}`}, -1, -1)
			return err
		}, 42201, 422},
		{"not JSON", func() error {
			_, err := cl.RegisterSchema(ctx, "test.Vitals", sr.Schema{Schema: `{"type":`}, -1, -1)
			return err
		}, 42201, 422},
		{"protobuf", func() error {
			_, err := cl.RegisterSchema(ctx, "proto", sr.Schema{Schema: `syntax = "proto3";`, Type: sr.TypeProtobuf}, -1, -1)
			return err
		}, 42201, 422},
		{"added field without default", func() error {
			_, err := cl.RegisterSchema(ctx, "test.Vitals", schemaFile(t, "Vitals.nodefault.avsc"), -1, -1)
			return err
		}, 409, 409},
	}
	for _, e := range errs {
		err := e.call()
		if code, status := errorCode(err); code != e.code || status != e.status {
			t.Errorf("%s: error %v has code %d status %d, want %d %d", e.name, err, code, status, e.code, e.status)
		}
	}
	if versions, _ := cl.SubjectVersions(ctx, "test.Vitals"); len(versions) != 2 {
		t.Errorf("rejected schemas were added: versions %v", versions)
	}
}

func TestHandlerContentType(t *testing.T) {
	store, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(store)
	defer srv.Close()
	for _, path := range []string{"/subjects", "/schemas/ids/1", "/config"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.schemaregistry.v1+json" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
}
