package process

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/backend"
)

// TestJupyterNotebook runs the documented default command: real Jupyter
// Notebook, its token from the environment, served under its base URL.
func TestJupyterNotebook(t *testing.T) {
	if _, err := exec.LookPath("jupyter-notebook"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("jupyter-notebook not found (scripts/install-test-deps installs it): %v", err)
		}
		t.Skipf("jupyter-notebook not found, skipping: %v", err)
	}
	t.Setenv("HOME", t.TempDir()) // Jupyter's runtime and config files
	command := DefaultCommand
	if os.Geteuid() == 0 {
		command += " --allow-root" // CI runs as root; Jupyter refuses it otherwise
	}
	d, err := New(Config{
		Command:      command,
		NotebookRoot: t.TempDir(),
		LogDir:       t.TempDir(),
		StopGrace:    20 * time.Second,
		Log:          testLog(t),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()
	sp := backend.Spec{ID: "alice", Owner: "alice", BaseURL: "/servers/alice/", Secret: secret}
	st, err := d.Start(ctx, sp)
	if err != nil {
		t.Fatalf("Start: %v\nlog:\n%s", err, readLog(t, d, "alice"))
	}
	defer d.Stop(ctx, "alice")

	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"with the secret", secret, http.StatusOK},
		{"without", "", http.StatusForbidden},
		{"wrong", "nope", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", st.Addr+"/servers/alice/api/contents", nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "token "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("got status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}

	if err := d.Stop(ctx, "alice"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := http.Get(st.Addr); err == nil {
		t.Errorf("Jupyter still answers after stop")
	}
}
