// Package redistest starts a private redis-server for a test, on a free
// loopback port, so that the test can stop, restart and break it without
// touching any other Redis on the machine.
package redistest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/internal/redisproc"
)

// Server is a redis-server process owned by one test.
type Server struct {
	// Addr is host:port of the server; it stays the same across Restart.
	Addr string

	t    testing.TB
	proc *redisproc.Proc
}

// Start starts a fresh, empty redis-server for t and stops it when the test
// ends. Without redis-server the test is skipped, or failed when CI=true
// (CI must never skip for lack of a tool).
func Start(t testing.TB) *Server {
	t.Helper()
	p, err := redisproc.Start(context.Background(), "", t.TempDir())
	if errors.Is(err, redisproc.ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(p.Stop)
	return &Server{Addr: p.Addr, t: t, proc: p}
}

// Require skips t when redis-server is not installed, or fails it when
// CI=true, for tests that start one through other code.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v", redisproc.ErrNotInstalled)
		}
		t.Skipf("skipping: %v", redisproc.ErrNotInstalled)
	}
}

// Client returns a new client for the server, closed when the test ends.
func (s *Server) Client() redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Stop stops the server; clients then fail until Restart.
func (s *Server) Stop() { s.proc.Stop() }

// Restart starts the server again on the same port. Its data is gone: the
// server keeps nothing on disk, like a Redis that lost its memory.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.proc.Restart(context.Background()); err != nil {
		s.t.Fatalf("restarting redis-server: %v", err)
	}
}

// String returns the address, for logs.
func (s *Server) String() string { return "redis-server at " + s.Addr }
