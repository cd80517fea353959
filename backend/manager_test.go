package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/backend/internal/testchild"
	"github.com/studio-proxy/studio-proxy/backend/process"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
)

// replica is one proxy replica's backend: its own Redis client, registry,
// process driver and manager.
type replica struct {
	rdb    redis.UniversalClient
	reg    *backend.Registry
	driver *process.Driver
	m      *backend.Manager
}

type replicaConfig struct {
	flags     []string // of the test child
	lockTTL   time.Duration
	stopGrace time.Duration
	rdb       redis.UniversalClient
	// forwardTimeout is the manager's ForwardTimeout
	forwardTimeout time.Duration
}

func newReplica(t *testing.T, srv *redistest.Server, cfg replicaConfig) *replica {
	t.Helper()
	d, err := process.New(process.Config{
		Command:   testchild.Command(cfg.flags...),
		Env:       []string{testchild.Env},
		LogDir:    t.TempDir(),
		StopGrace: cfg.stopGrace,
		Log:       testLog(t),
	})
	if err != nil {
		t.Fatalf("process.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.StopAll(ctx)
	})
	rdb := cfg.rdb
	if rdb == nil {
		rdb = srv.Client()
	}
	reg := backend.NewRegistry(rdb, backend.RegistryConfig{Log: testLog(t)})
	m, err := backend.NewManager(rdb, reg, backend.ManagerConfig{
		Driver:         d,
		LockTTL:        cfg.lockTTL,
		ForwardTimeout: cfg.forwardTimeout,
		Log:            testLog(t),
	})
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return &replica{rdb: rdb, reg: reg, driver: d, m: m}
}

// testLog writes to the test's output, shown when it fails or with -v.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// run runs the manager's Run until the test ends.
func (r *replica) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// watchEvents collects the events published on the channel from now on.
func watchEvents(t *testing.T, srv *redistest.Server) func() []events.Event {
	t.Helper()
	ps := srv.Client().Subscribe(context.Background(), events.Channel(backend.DefaultPrefix))
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatalf("subscribing: %v", err)
	}
	var mu sync.Mutex
	var got []events.Event
	go func() {
		for msg := range ps.Channel() {
			var ev events.Event
			json.Unmarshal([]byte(msg.Payload), &ev)
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { ps.Close() })
	return func() []events.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]events.Event(nil), got...)
	}
}

// states returns the states of the events about server id.
func states(evs []events.Event, id string) []string {
	var s []string
	for _, ev := range evs {
		if ev.Kind == events.ServerState && ev.Server == id {
			s = append(s, ev.State)
		}
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ensure(t *testing.T, r *replica, owner string) backend.Server {
	t.Helper()
	s, err := r.reg.EnsureDefault(context.Background(), owner)
	if err != nil {
		t.Fatalf("EnsureDefault: %v", err)
	}
	return s
}

func TestStartStop(t *testing.T) {
	srv := redistest.Start(t)
	r := newReplica(t, srv, replicaConfig{flags: []string{"--delay=300ms"}})
	created := ensure(t, r, "alice")
	evs := watchEvents(t, srv)
	ctx := context.Background()

	got, err := r.m.Start(ctx, "alice", "alice")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got.State != backend.Running || got.Addr == "" || got.Node != r.driver.Node() {
		t.Fatalf("Start: got %+v, want running here with an address", got)
	}
	if got.Secret != created.Secret {
		t.Errorf("Start changed the secret")
	}

	// the server answers at once, with the registry's secret
	req, _ := http.NewRequest("GET", got.Addr+"/servers/alice/", nil)
	req.Header.Set("Authorization", "token "+got.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the server: got %v, %v, want 200", resp, err)
	}
	resp.Body.Close()

	again, err := r.m.Start(ctx, "alice", "bob")
	if err != nil || again.Addr != got.Addr {
		t.Fatalf("second Start: got %+v, %v, want the running server", again, err)
	}

	stopped, err := r.m.Stop(ctx, "alice", "alice")
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if stopped.State != backend.Stopped || stopped.Addr != "" || stopped.Node != "" {
		t.Fatalf("Stop: got %+v, want stopped without address", stopped)
	}
	if st, _ := r.driver.Status(ctx, "alice"); st.State != backend.Stopped {
		t.Errorf("driver status after Stop: got %+v, want stopped", st)
	}
	if again, err := r.m.Stop(ctx, "alice", "alice"); err != nil || again.State != backend.Stopped {
		t.Errorf("second Stop: got %+v, %v, want stopped", again, err)
	}

	want := "starting running stopping stopped"
	waitFor(t, "the state events", func() bool {
		return strings.Join(states(evs(), "alice"), " ") == want
	})
	for _, ev := range evs() {
		if ev.User != "alice" || ev.Actor != "alice" {
			t.Errorf("event %+v: want user alice, actor alice", ev)
		}
	}
}

func TestStartUnknownServer(t *testing.T) {
	srv := redistest.Start(t)
	r := newReplica(t, srv, replicaConfig{})
	for _, id := range []string{"nobody", "../x"} {
		if _, err := r.m.Start(context.Background(), id, "alice"); err == nil {
			t.Errorf("Start(%q): got nil, want an error", id)
		}
	}
	_, err := r.m.Start(context.Background(), "nobody", "x")
	if !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Start(nobody): got %v, want ErrNotFound", err)
	}
}

func TestStartFailure(t *testing.T) {
	srv := redistest.Start(t)
	r := newReplica(t, srv, replicaConfig{flags: []string{"--exit=2"}})
	s := ensure(t, r, "alice")
	evs := watchEvents(t, srv)

	got, err := r.m.Start(context.Background(), "alice", "alice")
	if err == nil {
		t.Fatalf("Start: got %+v, want an error", got)
	}
	if got.State != backend.Failed || !strings.Contains(got.Reason, "exited with status 2") {
		t.Fatalf("Start: got %+v, want failed with the exit status", got)
	}
	if strings.Contains(got.Reason, s.Secret) {
		t.Errorf("reason %q reveals the secret", got.Reason)
	}
	saved, _ := r.reg.Get(context.Background(), "alice")
	if saved.State != backend.Failed || saved.Reason != got.Reason {
		t.Errorf("registry: got %+v, want the failure", saved)
	}
	waitFor(t, "the state events", func() bool {
		return strings.Join(states(evs(), "alice"), " ") == "starting failed"
	})
}

func TestConcurrentStartFromTwoReplicas(t *testing.T) {
	srv := redistest.Start(t)
	count := filepath.Join(t.TempDir(), "starts")
	flags := []string{"--delay=500ms", "--count-file=" + count}
	rc := replicaConfig{flags: flags, forwardTimeout: time.Second}
	replicas := []*replica{newReplica(t, srv, rc), newReplica(t, srv, rc)}
	ensure(t, replicas[0], "alice")

	type result struct {
		srv backend.Server
		err error
	}
	results := make([]result, 10)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			s, err := replicas[i%2].m.Start(context.Background(), "alice", "alice")
			results[i] = result{s, err}
		})
	}
	wg.Wait()

	for i, r := range results {
		// a caller that found the start under way gets "starting"
		if r.err != nil || (r.srv.State != backend.Running && r.srv.State != backend.Starting) {
			t.Errorf("caller %d: got %s, %v, want running or starting without error",
				i, r.srv.State, r.err)
		}
	}
	b, err := os.ReadFile(count)
	if err != nil {
		t.Fatalf("reading count: %v", err)
	}
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Fatalf("got %d processes started, want 1", n)
	}
	s, _ := replicas[1].reg.Get(context.Background(), "alice")
	if s.State != backend.Running {
		t.Fatalf("registry: got %s, want running", s.State)
	}

	// the replica that does not run the server cannot stop it while the
	// one that does is not listening (its Run is not running)
	other := replicas[1]
	if s.Node == replicas[1].driver.Node() {
		other = replicas[0]
	}
	_, err = other.m.Stop(context.Background(), "alice", "alice")
	if !errors.Is(err, backend.ErrElsewhere) {
		t.Errorf("Stop from the other replica: got %v, want ErrElsewhere", err)
	}
}

func TestBusy(t *testing.T) {
	srv := redistest.Start(t)
	r := newReplica(t, srv, replicaConfig{
		flags:     []string{"--ignore-term"},
		stopGrace: 3 * time.Second,
	})
	ensure(t, r, "alice")
	ctx := context.Background()
	if _, err := r.m.Start(ctx, "alice", "alice"); err != nil {
		t.Fatalf("Start: %v", err)
	}

	// a stop that takes its grace period holds the lock
	stopped := make(chan error, 1)
	go func() {
		_, err := r.m.Stop(ctx, "alice", "alice")
		stopped <- err
	}()
	waitFor(t, "stopping", func() bool {
		s, _ := r.reg.Get(ctx, "alice")
		return s.State == backend.Stopping
	})

	got, err := r.m.Start(ctx, "alice", "bob")
	if !errors.Is(err, backend.ErrBusy) || got.State != backend.Stopping {
		t.Errorf("Start during stop: got %s, %v, want stopping, ErrBusy", got.State, err)
	}
	got, err = r.m.Stop(ctx, "alice", "bob")
	if err != nil || got.State != backend.Stopping {
		t.Errorf("Stop during stop: got %s, %v, want stopping, nil", got.State, err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func TestCrashMarksFailed(t *testing.T) {
	srv := redistest.Start(t)
	r := newReplica(t, srv, replicaConfig{})
	r.run(t)
	ensure(t, r, "alice")
	evs := watchEvents(t, srv)
	ctx := context.Background()

	s, err := r.m.Start(ctx, "alice", "alice")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	http.Get(s.Addr + "/servers/alice/crash")

	var failed backend.Server
	waitFor(t, "the server to be marked failed", func() bool {
		failed, _ = r.reg.Get(ctx, "alice")
		return failed.State == backend.Failed
	})
	for _, want := range []string{"exited with status 3", "crashing on request"} {
		if !strings.Contains(failed.Reason, want) {
			t.Errorf("reason %q lacks %q", failed.Reason, want)
		}
	}
	waitFor(t, "the failed event", func() bool {
		return strings.Join(states(evs(), "alice"), " ") == "starting running failed"
	})

	// a failed server starts again
	if s, err := r.m.Start(ctx, "alice", "alice"); err != nil || s.State != backend.Running {
		t.Fatalf("Start after crash: got %+v, %v, want running", s, err)
	}
}

func TestLockOfCrashedHolderExpires(t *testing.T) {
	srv := redistest.Start(t)
	r := newReplica(t, srv, replicaConfig{lockTTL: time.Second})
	ensure(t, r, "alice")
	ctx := context.Background()

	// a holder that died just after taking the lock: no state written,
	// and nobody to release it (its expiry outlasts Start's watch of it)
	r.rdb.Set(ctx, "studio:lock:server:alice", "dead-holder", 3*time.Second)
	got, err := r.m.Start(ctx, "alice", "alice")
	if !errors.Is(err, backend.ErrBusy) || got.State != backend.Stopped {
		t.Fatalf("Start while locked: got %s, %v, want stopped, ErrBusy", got.State, err)
	}

	waitFor(t, "the lock to expire", func() bool {
		got, err = r.m.Start(ctx, "alice", "alice")
		return err == nil
	})
	if got.State != backend.Running {
		t.Fatalf("Start after expiry: got %+v, want running", got)
	}
	if n := r.rdb.Exists(ctx, "studio:lock:server:alice").Val(); n != 0 {
		t.Errorf("lock left behind after Start")
	}
}

func TestReconcile(t *testing.T) {
	srv := redistest.Start(t)
	r := newReplica(t, srv, replicaConfig{})
	ctx := context.Background()
	rdb := r.rdb

	// a live replica elsewhere
	rdb.Set(ctx, "studio:node:live-node", "host", time.Minute)

	tests := []struct {
		owner      string
		state      backend.State
		node       string
		locked     bool
		wantState  backend.State
		wantReason string
	}{
		{"mine", backend.Running, r.driver.Node(), false, backend.Failed, "no longer"},
		{"mine-starting", backend.Starting, r.driver.Node(), false, backend.Failed, "no longer"},
		{"mine-stopping", backend.Stopping, r.driver.Node(), false, backend.Stopped, ""},
		{"mine-locked", backend.Running, r.driver.Node(), true, backend.Running, ""},
		{"gone", backend.Running, "gone-node", false, backend.Failed, "replica that ran"},
		{"gone-stopping", backend.Stopping, "gone-node", false, backend.Stopped, ""},
		{"live", backend.Running, "live-node", false, backend.Running, ""},
		{"stopped", backend.Stopped, "", false, backend.Stopped, ""},
	}
	for _, tt := range tests {
		ensure(t, r, tt.owner)
		rdb.HSet(ctx, "studio:server:"+tt.owner, "state", string(tt.state), "node", tt.node,
			"addr", "http://127.0.0.1:1")
		if tt.locked {
			rdb.Set(ctx, "studio:lock:server:"+tt.owner, "other", time.Minute)
		}
	}
	evs := watchEvents(t, srv)

	if err := r.m.Reconcile(ctx); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.owner, func(t *testing.T) {
			got, err := r.reg.Get(ctx, tt.owner)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.State != tt.wantState || !strings.Contains(got.Reason, tt.wantReason) {
				t.Fatalf("got %s %q, want %s %q",
					got.State, got.Reason, tt.wantState, tt.wantReason)
			}
			changed := tt.state != tt.wantState
			waitFor(t, "the events", func() bool {
				return (len(states(evs(), tt.owner)) > 0) == changed
			})
		})
	}

	// a server of a lost replica starts here
	s, err := r.m.Start(ctx, "gone", "gone")
	if err != nil || s.State != backend.Running || s.Node != r.driver.Node() {
		t.Fatalf("Start of a lost server: got %+v, %v, want running here", s, err)
	}
}

func TestRunReconcilesAtStart(t *testing.T) {
	srv := redistest.Start(t)
	old := newReplica(t, srv, replicaConfig{})
	ensure(t, old, "alice")
	if _, err := old.m.Start(context.Background(), "alice", "alice"); err != nil {
		t.Fatalf("Start: %v", err)
	}

	// the proxy restarts: a new process with a new node; its old
	// children went with it, and its heartbeat lapses
	old.driver.StopAll(context.Background())
	srv.Client().Del(context.Background(), "studio:node:"+old.driver.Node())
	fresh := newReplica(t, srv, replicaConfig{})
	fresh.run(t)

	waitFor(t, "the lost server to be marked failed", func() bool {
		s, _ := fresh.reg.Get(context.Background(), "alice")
		return s.State == backend.Failed
	})
}

func TestShutdown(t *testing.T) {
	srv := redistest.Start(t)
	a := newReplica(t, srv, replicaConfig{})
	b := newReplica(t, srv, replicaConfig{})
	ctx := context.Background()
	for _, owner := range []string{"alice", "bob"} {
		ensure(t, a, owner)
	}
	if _, err := a.m.Start(ctx, "alice", "alice"); err != nil {
		t.Fatalf("Start on a: %v", err)
	}
	if _, err := b.m.Start(ctx, "bob", "bob"); err != nil {
		t.Fatalf("Start on b: %v", err)
	}

	if err := a.m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if s, _ := a.reg.Get(ctx, "alice"); s.State != backend.Stopped {
		t.Errorf("alice after a's shutdown: got %s, want stopped", s.State)
	}
	if st, _ := a.driver.Status(ctx, "alice"); st.State != backend.Stopped {
		t.Errorf("alice's process after a's shutdown: got %s, want stopped", st.State)
	}
	if s, _ := a.reg.Get(ctx, "bob"); s.State != backend.Running {
		t.Errorf("bob (on b) after a's shutdown: got %s, want running", s.State)
	}
}

func TestManagerRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	count := filepath.Join(t.TempDir(), "starts")
	r := newReplica(t, srv, replicaConfig{
		flags: []string{"--count-file=" + count},
		rdb:   noRetry(t, srv),
	})
	ensure(t, r, "alice")
	srv.Stop()

	ctx := context.Background()
	for _, op := range []struct {
		name string
		f    func(context.Context, string, string) (backend.Server, error)
	}{{"Start", r.m.Start}, {"Stop", r.m.Stop}} {
		_, err := op.f(ctx, "alice", "alice")
		if err == nil || errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s with Redis down: got %v, want a connection error", op.name, err)
		} else if !strings.Contains(err.Error(), "connect") {
			t.Errorf("%s with Redis down: error %q does not say Redis is unreachable", op.name, err)
		}
	}
	if _, err := os.Stat(count); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a server was started with Redis down")
	}
	if err := r.m.Reconcile(ctx); err == nil {
		t.Errorf("Reconcile with Redis down: got nil, want an error")
	}
}

func TestNewManagerRefusesBadConfig(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	reg := backend.NewRegistry(rdb, backend.RegistryConfig{})
	d, err := process.New(process.Config{Command: testchild.Command(), LogDir: t.TempDir()})
	if err != nil {
		t.Fatalf("process.New: %v", err)
	}
	tests := []struct {
		name string
		reg  *backend.Registry
		cfg  backend.ManagerConfig
	}{
		{"no driver", reg, backend.ManagerConfig{}},
		{"no registry", nil, backend.ManagerConfig{Driver: d}},
		{"prefix differs", reg, backend.ManagerConfig{Driver: d, Prefix: "other:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := backend.NewManager(rdb, tt.reg, tt.cfg); err == nil {
				t.Fatal("got no error, want one")
			}
		})
	}
}
