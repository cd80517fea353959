package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/demoserver"
)

// Driver is a lifecycle driver that runs each server as an
// internal/demoserver on its own loopback listener, inside the test
// process: real HTTP and websockets, no child process. It implements
// backend.Driver, and lets a test break a running server behind the
// registry's back (Crash, Hang) to see what the proxy makes of it.
type Driver struct {
	log *slog.Logger

	mu      sync.Mutex
	servers map[string]*demo
	starts  atomic.Int64
	delay   atomic.Int64 // nanoseconds each start takes before it answers
}

type demo struct {
	srv    *demoserver.Server
	addr   string
	l      net.Listener
	cancel context.CancelFunc
	done   chan struct{}
	hang   atomic.Bool
}

// NewDriver returns a driver with no servers running.
func NewDriver(log *slog.Logger) *Driver {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Driver{log: log, servers: map[string]*demo{}}
}

// Start starts a demo server for spec on a free loopback port.
func (d *Driver) Start(ctx context.Context, spec backend.Spec) (backend.Status, error) {
	if delay := time.Duration(d.delay.Load()); delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return backend.Status{}, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.servers[spec.ID]; ok {
		return backend.Status{State: backend.Running, Addr: s.addr}, nil
	}

	srv, err := demoserver.New(demoserver.Config{
		BaseURL: spec.BaseURL,
		Secret:  spec.Secret,
		Name:    spec.ID,
		Log:     d.log,
	})
	if err != nil {
		return backend.Status{}, fmt.Errorf("demo server: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return backend.Status{}, fmt.Errorf("listening: %w", err)
	}
	s := &demo{srv: srv, addr: "http://" + l.Addr().String(), l: l, done: make(chan struct{})}
	sctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	stream := spec.BaseURL + StreamPath
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case s.hang.Load():
			<-r.Context().Done()
		case r.URL.Path == stream && authorized(r, spec.Secret):
			serveStream(w, r)
		default:
			srv.ServeHTTP(w, r)
		}
	})
	go func() {
		defer close(s.done)
		hs := &http.Server{Handler: h}
		go func() { <-sctx.Done(); srv.CloseWebsockets(); hs.Close() }()
		hs.Serve(l)
	}()
	d.servers[spec.ID] = s
	d.starts.Add(1)
	return backend.Status{State: backend.Running, Addr: s.addr}, nil
}

// StreamPath, below a server's base URL, answers an endless event stream
// (text/event-stream, one event naming the X-Studio-User every 100ms),
// for tests of long-lived responses. It needs the server's secret like
// every other path.
const StreamPath = "_testenv/stream"

func authorized(r *http.Request, secret string) bool {
	return r.Header.Get("Authorization") == "token "+secret
}

func serveStream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := fmt.Fprintf(w, "data: %s\n\n", r.Header.Get("X-Studio-User")); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}

// Stop stops the server's demo server; stopping one that is not running
// is no error.
func (d *Driver) Stop(ctx context.Context, id string) error {
	d.mu.Lock()
	s, ok := d.servers[id]
	delete(d.servers, id)
	d.mu.Unlock()
	if ok {
		s.cancel()
		<-s.done
	}
	return nil
}

// Status reports whether the server's demo server runs.
func (d *Driver) Status(ctx context.Context, id string) (backend.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.servers[id]; ok {
		return backend.Status{State: backend.Running, Addr: s.addr}, nil
	}
	return backend.Status{State: backend.Stopped}, nil
}

// Crash stops the server's demo server without telling the registry, as
// if its process died: the proxy then finds its address refusing
// connections.
func (d *Driver) Crash(id string) { d.Stop(context.Background(), id) }

// Hang makes the server accept requests and never answer them (true), or
// answer again (false).
func (d *Driver) Hang(id string, hang bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.servers[id]; ok {
		s.hang.Store(hang)
	}
}

// Addr returns the base address of a running server ("http://host:port"),
// for tests that talk to a backend directly.
func (d *Driver) Addr(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.servers[id]; ok {
		return s.addr
	}
	return ""
}

// SetStartDelay makes every later start take d before the server runs,
// like a notebook server that takes a while to come up.
func (d *Driver) SetStartDelay(delay time.Duration) { d.delay.Store(int64(delay)) }

// Starts returns how many servers the driver has started.
func (d *Driver) Starts() int64 { return d.starts.Load() }

// stopAll stops every server, at the end of a test.
func (d *Driver) stopAll() {
	d.mu.Lock()
	ids := make([]string, 0, len(d.servers))
	for id := range d.servers {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	for _, id := range ids {
		d.Stop(context.Background(), id)
	}
}
