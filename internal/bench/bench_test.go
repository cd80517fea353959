package bench

import (
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestRun runs a very short benchmark end to end: every target answers
// and nothing fails. It says nothing about speed.
func TestRun(t *testing.T) {
	for _, prog := range []string{"/usr/sbin/nginx", "redis-server"} {
		if _, err := exec.LookPath(prog); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (scripts/install-test-deps installs it)", prog)
			}
			t.Skipf("%s not installed", prog)
		}
	}
	rep, err := Run(t.Context(), Config{
		Concurrency:  4,
		Duration:     300 * time.Millisecond,
		Warmup:       -1,
		Rounds:       1,
		ModerateRate: 100,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Results), 12; got != want {
		t.Fatalf("got %d results, want %d", got, want)
	}
	names := map[string]bool{}
	for _, r := range rep.Results {
		names[r.Name] = true
		if r.Count == 0 || r.Errors != 0 {
			t.Errorf("%s: got %d requests and %d errors, want some and none", r.Name, r.Count, r.Errors)
		}
	}

	// websockets through nginx: the upgrade reached the backend's echo
	for _, name := range []string{"websocket through nginx", "pipelined through nginx"} {
		if !names[name] {
			t.Errorf("no result named %q", name)
		}
	}
	ratios := []struct {
		name string
		got  float64
	}{
		{"WebsocketNginx", rep.WebsocketNginx},
		{"WebsocketNginxPipelined", rep.WebsocketNginxPipelined},
	}
	for _, r := range ratios {
		if r.got <= 0 {
			t.Errorf("%s: got %.2f, want more than 0", r.name, r.got)
		}
	}
}
