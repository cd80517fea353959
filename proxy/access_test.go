package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/studio-proxy/studio-proxy/internal/devidp"
	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

// testUsers are alice (owner), bob and dave (grantees without and with
// start/stop), erin (a colleague with no share), carol (an admin of
// acme) and mallory (another organization).
func testUsers() []devidp.User {
	return []devidp.User{
		{Username: "alice", Name: "Alice", Email: "alice@acme.test", Org: "acme"},
		{Username: "bob", Name: "Bob", Email: "bob@acme.test", Org: "acme"},
		{Username: "dave", Name: "Dave", Email: "dave@acme.test", Org: "acme"},
		{Username: "erin", Name: "Erin", Email: "erin@acme.test", Org: "acme"},
		{Username: "carol", Name: "Carol", Email: "carol@acme.test", Org: "acme",
			Groups: []string{devidp.AdminGroup}},
		{Username: "mallory", Name: "Mallory", Email: "mallory@other.test", Org: "other"},
	}
}

// sharedEnv starts two replicas with alice's server running and shared
// with bob (without start/stop) and dave (with).
func sharedEnv(t *testing.T, opts testenv.Options) (*testenv.Env, map[string]*http.Client) {
	t.Helper()
	opts.Replicas = max(opts.Replicas, 2)
	opts.Users = testUsers()
	env := testenv.Start(t, opts)
	clients := map[string]*http.Client{}
	for _, u := range opts.Users {
		clients[u.Username] = env.Login(t, u.Username)
	}
	env.StartServer(t, "alice", "alice")
	env.Share(t, "alice", "alice", "bob", false)
	env.Share(t, "alice", "alice", "dave", true)
	return env, clients
}

// TestAccessMatrix checks every kind of person on HTTP, websocket, stop
// and start of alice's server, through the replica they did not sign in
// at.
func TestAccessMatrix(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	clients["signed-out"] = env.Client(t)
	b := env.Replicas[1].URL

	tests := []struct {
		who       string
		use       bool   // may use the server
		startStop bool   // may start and stop it
		denyCode  string // error code when use is false
		denyHTTP  int
	}{
		{"alice", true, true, "", 0},
		{"carol", true, true, "", 0},
		{"dave", true, true, "", 0},
		{"bob", true, false, "", 0},
		{"erin", false, false, "no_access", http.StatusForbidden},
		{"mallory", false, false, "no_access", http.StatusForbidden},
		{"signed-out", false, false, "signed_out", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.who, func(t *testing.T) {
			c := clients[tt.who]

			// HTTP
			status, body := call(t, c, "GET", b+"/servers/alice/api/x", nil, "")
			if tt.use {
				if status != http.StatusOK {
					t.Fatalf("http: got %d %s, want 200", status, body)
				}
				if got := report(t, body).User; got != tt.who {
					t.Errorf("http: backend saw user %q, want %q", got, tt.who)
				}
			} else if status != tt.denyHTTP || errorCode(body) != tt.denyCode {
				t.Errorf("http: got %d %s, want %d %s", status, body, tt.denyHTTP, tt.denyCode)
			}

			// websocket
			conn, resp, err := dialWS(t, env, c, b, "/servers/alice/ws", nil)
			if tt.use {
				if err != nil {
					t.Fatalf("websocket: %v (status %v)", err, resp)
				}
				if w := whoami(t, conn); w.User != tt.who || w.Path != "/servers/alice/ws" {
					t.Errorf("websocket: got user %q path %q, want %q /servers/alice/ws",
						w.User, w.Path, tt.who)
				}
				conn.Close()
			} else if err == nil || resp == nil || resp.StatusCode != tt.denyHTTP {
				t.Errorf("websocket: got err %v resp %v, want status %d", err, resp, tt.denyHTTP)
			}

			// stop, then start
			wantStop, wantCode := http.StatusOK, ""
			switch {
			case tt.who == "signed-out":
				wantStop, wantCode = http.StatusUnauthorized, "signed_out"
			case !tt.use:
				wantStop, wantCode = http.StatusForbidden, "no_access"
			case !tt.startStop:
				wantStop, wantCode = http.StatusForbidden, "start_stop_not_allowed"
			}
			for _, action := range []string{"stop", "start"} {
				status, body := apiWrite(t, env, c, b, "POST", "api/servers/alice/"+action, "")
				if status != wantStop || (wantCode != "" && errorCode(body) != wantCode) {
					t.Errorf("%s: got %d %s, want %d %s", action, status, body, wantStop, wantCode)
				}
				if status == http.StatusOK && !strings.Contains(string(body), `"state":"`+
					map[string]string{"stop": "stopped", "start": "running"}[action]+`"`) {
					t.Errorf("%s: got %s, want the new state", action, body)
				}
			}
		})
	}
}

// TestStoppedPage checks the page a browser gets for a stopped server:
// a Start button only for those who may start it.
func TestStoppedPage(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	if _, err := env.Replicas[0].Manager.Stop(t.Context(), "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	nav := http.Header{"Accept": {"text/html"}, "Sec-Fetch-Mode": {"navigate"}}
	tests := []struct {
		who       string
		wantStart bool
	}{
		{"alice", true},
		{"dave", true},
		{"bob", false},
	}
	for _, tt := range tests {
		t.Run(tt.who, func(t *testing.T) {
			status, body := call(t, clients[tt.who], "GET", env.ExternalURL+"/servers/alice/", nav, "")
			if status != http.StatusServiceUnavailable {
				t.Fatalf("got %d, want 503", status)
			}
			page := string(body)
			if !strings.Contains(page, "is stopped") {
				t.Errorf("page does not say the server is stopped: %s", page)
			}
			if got := strings.Contains(page, `id="start"`); got != tt.wantStart {
				t.Errorf("got start button %v, want %v", got, tt.wantStart)
			}
		})
	}

	// the API gets JSON
	status, body := call(t, clients["bob"], "GET", env.ExternalURL+"/servers/alice/api/x", nil, "")
	if status != http.StatusServiceUnavailable || errorCode(body) != "server_stopped" {
		t.Errorf("api: got %d %s, want 503 server_stopped", status, body)
	}
}
