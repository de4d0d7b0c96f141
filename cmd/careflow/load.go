package main

import (
	"context"
	"errors"
	"io"
)

// cmdLoad is the open-loop MLLP load generator. (Issue 4 builds it.)
func cmdLoad(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("load: the load generator is not built yet")
}
