package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/careflow-health/careflow/avro"
	"github.com/careflow-health/careflow/avro/registry"
)

var _ avro.Registry = (*registry.Store)(nil)

func TestStorePersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "registry") // Open creates it
	v1, v2 := schemaFile(t, "Vitals.v1.avsc").Schema, schemaFile(t, "Vitals.v2.avsc").Schema

	s, err := registry.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id1, err := s.Register(ctx, "test.Vitals", v1)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.Register(ctx, "test.Vitals", v2)
	if err != nil {
		t.Fatal(err)
	}

	s, err = registry.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		schema string
		id     int
	}{{v1, id1}, {v2, id2}} {
		if got, err := s.Register(ctx, "test.Vitals", c.schema); err != nil || got != c.id {
			t.Errorf("after reopen, register gives id %d (%v), want %d", got, err, c.id)
		}
		if got, err := s.SchemaByID(ctx, c.id); err != nil || got != c.schema {
			t.Errorf("after reopen, schema %d = %q (%v)", c.id, got, err)
		}
	}
	// A new schema after reopen takes the next id, not a reused one.
	other := `{"type":"record","name":"Other","fields":[]}`
	id3, err := s.Register(ctx, "test.Other", other)
	if err != nil || id3 == id1 || id3 == id2 {
		t.Fatalf("new schema after reopen got id %d (%v); ids in use %d %d", id3, err, id1, id2)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "schemas.json" {
		t.Errorf("directory holds %v, want only schemas.json (a temporary file was left behind)", entries)
	}
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	s, err := registry.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var e *registry.Error
	if _, err := s.SchemaByID(ctx, 1); !errors.As(err, &e) || e.Code != registry.CodeSchemaNotFound {
		t.Errorf("SchemaByID on empty store: %v", err)
	}
	if _, err := s.Register(ctx, "x", "not json"); !errors.As(err, &e) || e.Code != registry.CodeInvalidSchema {
		t.Errorf("Register invalid: %v", err)
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "schemas.json"), []byte(`{"schemas":[],"subjects":{"a":[3]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Open(bad); err == nil {
		t.Error("Open accepted a file whose subject names a missing schema id")
	}
	if err := os.WriteFile(filepath.Join(bad, "schemas.json"), []byte(`{`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Open(bad); err == nil {
		t.Error("Open accepted a truncated file")
	}
}
