package main

import (
	"context"
	"errors"
	"io"
)

// TODO: placeholder until its issue lands; replaced by the real command.
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("bench: not implemented yet")
}
