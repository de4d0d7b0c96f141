// This file is the client of a real schema registry.

package registry

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"
)

// Remote is a schema registry reached over HTTP (Confluent, Karapace,
// Redpanda, or another careflow's Store), through franz-go's sr.Client.
type Remote struct {
	cl *sr.Client
}

// NewRemote returns a Remote for the registry at url, such as
// http://127.0.0.1:8081.
func NewRemote(url string) (*Remote, error) {
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		return nil, fmt.Errorf("schema registry client for %s: %w", url, err)
	}
	return &Remote{cl: cl}, nil
}

// Register registers schema, an Avro schema, under subject and returns its
// id. The registry returns the existing id for a schema it already has.
func (r *Remote) Register(ctx context.Context, subject, schema string) (int, error) {
	id, err := r.cl.RegisterSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("register schema for subject %s: %w", subject, err)
	}
	return id, nil
}

// SchemaByID returns the text of the schema with id.
func (r *Remote) SchemaByID(ctx context.Context, id int) (string, error) {
	s, err := r.cl.SchemaByID(ctx, id)
	if err != nil {
		return "", fmt.Errorf("fetch schema id %d: %w", id, err)
	}
	return s.Schema, nil
}
