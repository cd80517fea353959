package process

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/backend/internal/testchild"
)

func TestMain(m *testing.M) {
	testchild.Main()
	os.Exit(m.Run())
}

const secret = "0123456789abcdef0123456789abcdef"

// newDriver returns a driver that runs the test binary as its servers.
func newDriver(t *testing.T, cfg Config, flags ...string) *Driver {
	t.Helper()
	if cfg.Command == "" {
		cfg.Command = testchild.Command(flags...)
	}
	if cfg.Env == nil {
		cfg.Env = []string{testchild.Env}
	}
	cfg.LogDir = t.TempDir()
	cfg.Log = testLog(t)
	if cfg.NotebookRoot == "" {
		cfg.NotebookRoot = t.TempDir()
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.StopAll(ctx)
	})
	return d
}

// testLog writes to the test's output, shown when it fails or with -v.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func spec(id string) backend.Spec {
	return backend.Spec{ID: id, Owner: "alice", BaseURL: "/servers/" + id + "/", Secret: secret}
}

// get asks the server for path under its base URL with the secret.
func get(t *testing.T, st backend.Status, id, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", st.Addr+"/servers/"+id+"/"+path, nil)
	req.Header.Set("Authorization", "token "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func start(t *testing.T, d *Driver, id string) backend.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := d.Start(ctx, spec(id))
	if err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	if st.State != backend.Running || !strings.HasPrefix(st.Addr, "http://127.0.0.1:") {
		t.Fatalf("Start(%s): got %+v, want running on loopback", id, st)
	}
	return st
}

func readLog(t *testing.T, d *Driver, id string) string {
	t.Helper()
	b, err := os.ReadFile(d.LogPath(id))
	if err != nil {
		t.Fatalf("reading log: %v", err)
	}
	return string(b)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"unknown placeholder", Config{Command: "true --x={prot}"}},
		{"unterminated quote", Config{Command: "true 'x"}},
		{"blank command", Config{Command: "   "}},
		{"placeholder program", Config{Command: "{id} serve"}},
		{"program not installed", Config{Command: "no-such-program-studio --x"}},
		{"env without name", Config{Command: "true", Env: []string{"=x"}}},
		{"env without equals", Config{Command: "true", Env: []string{"X"}}},
		{"env unknown placeholder", Config{Command: "true", Env: []string{"X={nope}"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Fatalf("New(%+v): got no error, want one", tt.cfg)
			}
		})
	}
	if _, err := New(Config{Command: "no-such-program-studio"}); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing program: got %v, want exec.ErrNotFound", err)
	}
}

func TestStartWaitsUntilItAnswers(t *testing.T) {
	d := newDriver(t, Config{}, "--delay=700ms")
	st := start(t, d, "alice")

	// no retry: Start promised that it answers
	if code, _ := get(t, st, "alice", ""); code != http.StatusOK {
		t.Fatalf("got status %d, want 200", code)
	}
	got, err := d.Status(context.Background(), "alice")
	if err != nil || got != st {
		t.Fatalf("Status: got %+v, %v, want %+v", got, err, st)
	}
}

func TestDoubleStart(t *testing.T) {
	count := filepath.Join(t.TempDir(), "starts")
	d := newDriver(t, Config{}, "--count-file="+count)

	first := start(t, d, "alice")
	second := start(t, d, "alice")
	if second != first {
		t.Fatalf("second start: got %+v, want %+v", second, first)
	}

	// concurrent starts of one server run it once
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { d.Start(context.Background(), spec("bob")) })
	}
	wg.Wait()
	b, err := os.ReadFile(count)
	if err != nil {
		t.Fatalf("reading count: %v", err)
	}
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Fatalf("got %d processes started, want 2 (alice, bob)", n)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("STUDIO_REDIS_URL", "redis://:password@redis:6379/0")
	root := t.TempDir()
	d := newDriver(t, Config{NotebookRoot: root}, "--notebook-dir={notebook_dir}")
	st := start(t, d, "alice")

	_, env := get(t, st, "alice", "env")
	names := strings.Fields(env)
	for _, want := range []string{"STUDIO_SERVER_SECRET", "STUDIO_SERVER_ID", "PATH"} {
		if !slices.Contains(names, want) {
			t.Errorf("server environment lacks %s: %q", want, names)
		}
	}
	if slices.Contains(names, "STUDIO_REDIS_URL") {
		t.Errorf("server inherited the proxy's STUDIO_REDIS_URL")
	}

	// the secret travels in the environment, not on the command line
	if log := readLog(t, d, "alice"); strings.Contains(log, secret) {
		t.Errorf("the command line holds the secret:\n%s", log)
	}

	fi, err := os.Stat(filepath.Join(root, "alice"))
	if err != nil {
		t.Fatalf("notebook directory: %v", err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("notebook directory: got mode %v, want a directory with 0700", fi.Mode())
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name      string
		flags     []string
		graceful  bool
		stopGrace time.Duration
	}{
		{"sigterm honoured", nil, true, 30 * time.Second},
		{"sigkill after grace", []string{"--ignore-term"}, false, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, Config{StopGrace: tt.stopGrace}, tt.flags...)
			st := start(t, d, "alice")

			if err := d.Stop(context.Background(), "alice"); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			got, _ := d.Status(context.Background(), "alice")
			if got.State != backend.Stopped {
				t.Errorf("Status after stop: got %+v, want stopped", got)
			}
			if _, err := http.Get(st.Addr); err == nil {
				t.Errorf("server still answers after stop")
			}
			log := readLog(t, d, "alice")
			if got := strings.Contains(log, "testchild: stopped"); got != tt.graceful {
				t.Errorf("shut down by itself: got %v, want %v; log:\n%s", got, tt.graceful, log)
			}

			// stopping again is no error
			if err := d.Stop(context.Background(), "alice"); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

func TestCrashIsNoticed(t *testing.T) {
	d := newDriver(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type change struct {
		id string
		st backend.Status
	}
	changes := make(chan change, 10)
	go d.Watch(ctx, func(id string, st backend.Status) { changes <- change{id, st} })
	waitFor(t, "the watcher", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.watchers) == 1
	})

	st := start(t, d, "alice")
	http.Get(st.Addr + "/servers/alice/crash")

	var c change
	select {
	case c = <-changes:
	case <-time.After(15 * time.Second):
		t.Fatal("no change reported after the crash")
	}
	if c.id != "alice" || c.st.State != backend.Failed {
		t.Fatalf("got %s %+v, want alice failed", c.id, c.st)
	}
	for _, want := range []string{"exited with status 3", "crashing on request"} {
		if !strings.Contains(c.st.Reason, want) {
			t.Errorf("reason %q lacks %q", c.st.Reason, want)
		}
	}
	if got, _ := d.Status(ctx, "alice"); got.State != backend.Failed || got.Reason != c.st.Reason {
		t.Errorf("Status: got %+v, want failed with the same reason", got)
	}

	// a stop that was asked for is not reported, and a failed server
	// starts again
	start(t, d, "alice")
	if err := d.Stop(ctx, "alice"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case c := <-changes:
		t.Fatalf("got change %+v after a requested stop, want none", c)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestStartFails(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		flags   []string
		reasons []string
	}{
		{
			name:    "exits at once",
			flags:   []string{"--exit=2"},
			reasons: []string{"exited with status 2 before answering", "my token was [secret]"},
		},
		{
			name:    "never answers",
			cfg:     Config{StartTimeout: 500 * time.Millisecond},
			flags:   []string{"--delay=1m"},
			reasons: []string{"did not answer within 500ms"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, tt.cfg, tt.flags...)
			st, err := d.Start(context.Background(), spec("alice"))
			if err == nil {
				t.Fatalf("Start: got %+v, want an error", st)
			}
			if st.State != backend.Failed {
				t.Errorf("got state %s, want failed", st.State)
			}
			for _, want := range tt.reasons {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q reveals the secret", err)
			}
			got, _ := d.Status(context.Background(), "alice")
			if got.State != backend.Failed {
				t.Errorf("Status: got %+v, want failed", got)
			}

			// nothing is left running
			d.mu.Lock()
			p := d.procs["alice"]
			d.mu.Unlock()
			select {
			case <-p.done:
			default:
				t.Errorf("the process still runs")
			}
		})
	}
}

func TestStartRefusesBadSpec(t *testing.T) {
	d := newDriver(t, Config{})
	tests := []struct {
		name string
		spec backend.Spec
	}{
		{"bad id", backend.Spec{ID: "../x", Owner: "alice", BaseURL: "/", Secret: "s"}},
		{"bad owner", backend.Spec{ID: "alice", Owner: "a/b", BaseURL: "/", Secret: "s"}},
		{"bad base url", backend.Spec{ID: "alice", Owner: "alice", BaseURL: "x", Secret: "s"}},
		{"no secret", backend.Spec{ID: "alice", Owner: "alice", BaseURL: "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, err := d.Start(context.Background(), tt.spec); err == nil {
				t.Fatalf("Start(%+v): got %+v, want an error", tt.spec, st)
			}
		})
	}
}

func TestLogKeepsPreviousRun(t *testing.T) {
	d := newDriver(t, Config{})
	start(t, d, "alice")
	if err := d.Stop(context.Background(), "alice"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	start(t, d, "alice")

	prev, err := os.ReadFile(d.LogPath("alice") + ".1")
	if err != nil {
		t.Fatalf("previous log: %v", err)
	}
	if !strings.Contains(string(prev), "testchild: stopped") {
		t.Errorf("previous log lacks the first run's end:\n%s", prev)
	}
	if cur := readLog(t, d, "alice"); strings.Contains(cur, "testchild: stopped") {
		t.Errorf("current log holds the previous run:\n%s", cur)
	}
}
