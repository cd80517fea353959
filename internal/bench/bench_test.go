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
	if got, want := len(rep.Results), 10; got != want {
		t.Fatalf("got %d results, want %d", got, want)
	}
	for _, r := range rep.Results {
		if r.Count == 0 || r.Errors != 0 {
			t.Errorf("%s: got %d requests and %d errors, want some and none", r.Name, r.Count, r.Errors)
		}
	}
}
