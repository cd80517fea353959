package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/studio-proxy/studio-proxy/internal/demoserver"
)

const demoSummary = `Runs the built-in demo notebook server (HTTP and a websocket echo) on
127.0.0.1. The process driver starts it for each server in dev mode when
Jupyter Notebook is not installed. Its secret comes from the environment
variable STUDIO_SERVER_SECRET, never from a flag.`

// runDemoServer is a hidden command: the process driver runs it as a
// server's command.
func runDemoServer(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("demo-server", demoSummary, stdout)
	port := fs.Int("port", 0, "port to listen on, on 127.0.0.1 (required)")
	base := fs.String("base-url", "/", "path the server is served under, e.g. /servers/alice/")
	name := fs.String("name", "", "name shown on the page, e.g. the server id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port <= 0 || *port > 65535 {
		return errors.New("demo-server: --port is required")
	}
	secret := os.Getenv("STUDIO_SERVER_SECRET")
	if secret == "" {
		return errors.New("demo-server: STUDIO_SERVER_SECRET is not set")
	}

	srv, err := demoserver.New(demoserver.Config{BaseURL: *base, Secret: secret, Name: *name})
	if err != nil {
		return fmt.Errorf("demo-server: %w", err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("demo-server: %w", err)
	}
	return srv.Serve(ctx, l)
}
