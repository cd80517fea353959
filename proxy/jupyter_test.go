package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/backend/process"
	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

// TestJupyter runs a real Jupyter Notebook behind the proxy and does what
// its page does: open the tree, create a notebook, start a kernel, run
// code over the kernel's websocket. It checks what Jupyter needs of a
// proxy: its base URL, its token on every request, a Host it accepts,
// and no origin or XSRF refusal of the browser's calls.
func TestJupyter(t *testing.T) {
	if _, err := exec.LookPath("jupyter-notebook"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("jupyter-notebook not installed (scripts/install-test-deps installs it)")
		}
		t.Skip("jupyter-notebook not installed")
	}
	command := process.DefaultCommand
	if os.Geteuid() == 0 {
		command += " --allow-root"
	}
	d, err := process.New(process.Config{
		Command:      command,
		NotebookRoot: t.TempDir(),
		LogDir:       t.TempDir(),
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.StopAll(context.Background()) })
	env := testenv.Start(t, testenv.Options{Driver: d})
	alice := env.Login(t, "alice")
	base := env.ExternalURL

	status, body := apiWrite(t, env, alice, base, "POST", "api/servers/alice/start", "")
	if status != http.StatusOK {
		t.Fatalf("start: got %d %s", status, body)
	}
	status, body = call(t, alice, "GET", base+"/tree", http.Header{"Accept": {"text/html"}}, "")
	if status != http.StatusOK || !strings.Contains(string(body), "/servers/alice/") {
		t.Fatalf("tree: got %d %.300s, want Jupyter's page under /servers/alice/", status, body)
	}

	// the page's calls carry the page's Origin and no token of their own
	page := http.Header{"Origin": {base}, "Content-Type": {"application/json"}}
	status, body = call(t, alice, "POST", base+"/servers/alice/api/contents", page,
		`{"type":"notebook"}`)
	if status != http.StatusCreated {
		t.Fatalf("creating a notebook: got %d %s", status, body)
	}
	status, body = call(t, alice, "POST", base+"/servers/alice/api/kernels", page, `{}`)
	if status != http.StatusCreated {
		t.Fatalf("starting a kernel: got %d %s", status, body)
	}
	var kernel struct{ ID string }
	if err := json.Unmarshal(body, &kernel); err != nil || kernel.ID == "" {
		t.Fatalf("kernel: %v %s", err, body)
	}

	conn, resp, err := dialWS(t, env, alice, base,
		"/servers/alice/api/kernels/"+kernel.ID+"/channels?session_id=s1", nil)
	if err != nil {
		t.Fatalf("kernel websocket: %v %v", err, resp)
	}
	err = conn.WriteJSON(map[string]any{
		"header": map[string]any{"msg_id": "m1", "username": "alice", "session": "s1",
			"msg_type": "execute_request", "version": "5.3"},
		"parent_header": map[string]any{},
		"metadata":      map[string]any{},
		"channel":       "shell",
		"content":       map[string]any{"code": "print(6*7)", "silent": false},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		var msg struct {
			MsgType string `json:"msg_type"`
			Content struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for the output: %v", err)
		}
		if json.Unmarshal(b, &msg) == nil && msg.MsgType == "stream" {
			if got := strings.TrimSpace(msg.Content.Text); got != "42" {
				t.Errorf("got output %q, want 42", got)
			}
			return
		}
	}
}
