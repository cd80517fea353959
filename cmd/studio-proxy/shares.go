package main

import (
	"context"
	"errors"
	"io"
)

// TODO: placeholder until its issue lands; replaced by the real command.
func runShares(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("shares: not implemented yet")
}
