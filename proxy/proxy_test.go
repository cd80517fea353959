package proxy_test

import (
	"net/http"
	"testing"

	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

func TestSmoke(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	base := env.ExternalURL
	alice := env.Login(t, "alice")

	status, body := call(t, alice, "GET", base+"/servers/alice/x", nil, "")
	if status != http.StatusServiceUnavailable || errorCode(body) != "server_stopped" {
		t.Fatalf("stopped server: got %d %s, want 503 server_stopped", status, body)
	}
	status, body = apiWrite(t, env, alice, base, "POST", "api/servers/alice/start", "")
	if status != http.StatusOK {
		t.Fatalf("start: got %d %s, want 200", status, body)
	}
	status, body = call(t, alice, "GET", base+"/servers/alice/x?q=1", nil, "")
	if status != http.StatusOK {
		t.Fatalf("running server: got %d %s, want 200", status, body)
	}
	rep := report(t, body)
	if rep.User != "alice" || rep.Path != "/servers/alice/x" || rep.Query != "q=1" {
		t.Errorf("got user %q path %q query %q, want alice /servers/alice/x q=1",
			rep.User, rep.Path, rep.Query)
	}
}
