package k8s

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// apiServer is a real HTTP server that answers the version endpoint as
// the Kubernetes API does, and records the user agent.
func apiServer(t *testing.T) (url string, agent func() string) {
	t.Helper()
	var (
		mu  sync.Mutex
		got string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		got = r.UserAgent()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"major":"1","minor":"37","gitVersion":"v1.37.0"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() string {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	conf := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
contexts:
- name: test
  context:
    cluster: test
    user: test
current-context: test
users:
- name: test
  user:
    token: not-a-real-token
`, server)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNewClientset(t *testing.T) {
	t.Run("kubeconfig path", func(t *testing.T) {
		url, agent := apiServer(t)
		cs, err := NewClientset(writeKubeconfig(t, url))
		if err != nil {
			t.Fatalf("NewClientset: %v", err)
		}
		v, err := cs.Discovery().ServerVersion()
		if err != nil {
			t.Fatalf("asking the server's version: %v", err)
		}
		if v.GitVersion != "v1.37.0" {
			t.Errorf("got version %q, want v1.37.0", v.GitVersion)
		}
		if agent() != "studio-proxy" {
			t.Errorf("got user agent %q, want studio-proxy", agent())
		}
	})

	t.Run("KUBECONFIG outside a cluster", func(t *testing.T) {
		url, _ := apiServer(t)
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		t.Setenv("KUBECONFIG", writeKubeconfig(t, url))
		cs, err := NewClientset("")
		if err != nil {
			t.Fatalf("NewClientset: %v", err)
		}
		if _, err := cs.Discovery().ServerVersion(); err != nil {
			t.Errorf("asking the server's version: %v", err)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		_, err := NewClientset(filepath.Join(t.TempDir(), "absent"))
		if err == nil {
			t.Error("got nil error, want one")
		}
	})
}
