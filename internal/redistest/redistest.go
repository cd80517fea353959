// Package redistest starts a private redis-server for a test, on a free
// loopback port, so that the test can stop, restart and break it without
// touching any other Redis on the machine.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process owned by one test.
type Server struct {
	// Addr is host:port of the server; it stays the same across Restart.
	Addr string

	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the path of redis-server. When it is missing the test is
// skipped, or failed when CI=true (CI must never skip for lack of a tool).
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("redis-server not found (run scripts/install-test-deps): %v", err)
	}
	t.Skipf("redis-server not found, skipping (scripts/install-test-deps installs it): %v", err)
	return ""
}

// Start starts a fresh, empty redis-server for t and stops it when the test
// ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{t: t, dir: t.TempDir(), port: freePort(t)}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.start(bin)
	t.Cleanup(func() { s.kill() })
	return s
}

// Client returns a new client for the server, closed when the test ends.
func (s *Server) Client() redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Stop stops the server; clients then fail until Restart.
func (s *Server) Stop() {
	s.t.Helper()
	s.kill()
}

// Restart starts the server again on the same port. Its data is gone: the
// server keeps nothing on disk, like a Redis that lost its memory.
func (s *Server) Restart() {
	s.t.Helper()
	s.kill()
	s.start(Binary(s.t))
}

func (s *Server) start(bin string) {
	s.t.Helper()
	log := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", log,
	)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.done)

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(log)
			s.t.Fatalf("redis-server exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s not answering: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// String returns the address, for logs.
func (s *Server) String() string { return fmt.Sprintf("redis-server at %s", s.Addr) }
