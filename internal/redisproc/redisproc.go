// Package redisproc runs a private, in-memory redis-server on a free
// loopback port: for the tests, the benchmark and the dev command, which
// must never touch a Redis someone else uses.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotInstalled is returned when there is no redis-server to run.
var ErrNotInstalled = errors.New("redis-server is not installed " +
	"(Debian: apt-get install redis-server; scripts/install-test-deps does it)")

// Proc is a running redis-server. It keeps nothing on disk: a restart
// starts empty, like a Redis that lost its memory.
type Proc struct {
	// Addr is host:port of the server; it stays the same across Restart.
	Addr string

	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs redis-server (bin, or the one on PATH when bin is empty) on a
// free loopback port, with its log file in dir, and returns once it
// answers.
func Start(ctx context.Context, bin, dir string) (*Proc, error) {
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, ErrNotInstalled
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating redis directory: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	p := &Proc{bin: path, dir: dir, port: port}
	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// LogPath is the server's log file.
func (p *Proc) LogPath() string { return filepath.Join(p.dir, "redis.log") }

// Stop kills the server. Stopping a stopped server does nothing.
func (p *Proc) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// Restart stops the server and starts it again, empty, on the same port.
func (p *Proc) Restart(ctx context.Context) error {
	p.Stop()
	return p.start(ctx)
}

func (p *Proc) start(ctx context.Context) error {
	cmd := exec.Command(p.bin,
		"--port", strconv.Itoa(p.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", p.dir,
		"--logfile", p.LogPath(),
	)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(p.done)

	c := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			p.cmd = nil
			log, _ := os.ReadFile(p.LogPath())
			return fmt.Errorf("redis-server exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return fmt.Errorf("redis-server on %s not answering: %w", p.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
