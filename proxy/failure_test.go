package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/testenv"
	"github.com/studio-proxy/studio-proxy/proxy"
)

// TestRedisDown: with Redis gone, nothing is allowed on trust: requests
// get 503, readiness fails, and both recover when Redis is back.
func TestRedisDown(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	bob := clients["bob"]
	b := env.Replicas[1]

	// warm every cache
	status, body := call(t, bob, "GET", b.URL+"/servers/alice/x", nil, "")
	if status != http.StatusOK {
		t.Fatalf("before: got %d %s", status, body)
	}
	env.Redis.Stop()

	// the replica notices the subscription is gone and distrusts its
	// caches; until then its cached answers stand, which is what it would
	// have answered a moment earlier
	waitFor(t, "replica to notice Redis is gone", func() bool { return !b.Events.Subscribed() })
	status, body = call(t, bob, "GET", b.URL+"/servers/alice/x", nil, "")
	if status != http.StatusServiceUnavailable {
		t.Errorf("redis down: got %d %s, want 503", status, body)
	}
	status, _ = call(t, bob, "GET", b.URL+env.Prefix+"readyz", nil, "")
	if status != http.StatusServiceUnavailable {
		t.Errorf("readyz: got %d, want 503", status)
	}
	if status, _ := call(t, bob, "GET", b.URL+env.Prefix+"healthz", nil, ""); status != http.StatusOK {
		t.Errorf("healthz: got %d, want 200 (the process is up)", status)
	}
	status, body = apiWrite(t, env, clients["alice"], b.URL, "POST", "api/servers/alice/stop", "")
	if status != http.StatusServiceUnavailable {
		t.Errorf("stop: got %d %s, want 503", status, body)
	}

	// a Redis that comes back empty knows no session: signed out, but
	// ready again
	env.Redis.Restart()
	waitFor(t, "replica to subscribe again", b.Events.Subscribed)
	if status, _ := call(t, bob, "GET", b.URL+env.Prefix+"readyz", nil, ""); status != http.StatusOK {
		t.Errorf("readyz after restart: got %d, want 200", status)
	}
	status, _ = call(t, bob, "GET", b.URL+"/servers/alice/x", nil, "")
	if status != http.StatusUnauthorized {
		t.Errorf("after restart: got %d, want 401", status)
	}
}

// TestBackendFailures: a backend that refuses gets 502, one that hangs
// 504, each naming the server.
func TestBackendFailures(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{
		Proxy: func(_ *testenv.Replica, cfg *proxy.Config) {
			cfg.DialTimeout = time.Second
			cfg.ResponseHeaderTimeout = 300 * time.Millisecond
		},
	})
	alice := clients["alice"]
	base := env.Replicas[1].URL

	env.Driver.Hang("alice", true)
	status, body := call(t, alice, "GET", base+"/servers/alice/x", nil, "")
	if status != http.StatusGatewayTimeout || errorCode(body) != "backend_timeout" ||
		!strings.Contains(string(body), `\"alice\"`) {
		t.Errorf("hanging: got %d %s, want 504 backend_timeout naming alice", status, body)
	}
	if _, resp, err := dialWS(t, env, alice, base, "/servers/alice/ws", nil); err == nil ||
		resp == nil || resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("hanging websocket: got %v %v, want 504", err, resp)
	}
	env.Driver.Hang("alice", false)

	env.Driver.Crash("alice")
	status, body = call(t, alice, "GET", base+"/servers/alice/x", nil, "")
	if status != http.StatusBadGateway || errorCode(body) != "backend_unreachable" {
		t.Errorf("crashed: got %d %s, want 502 backend_unreachable", status, body)
	}
	if _, resp, err := dialWS(t, env, alice, base, "/servers/alice/ws", nil); err == nil ||
		resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("crashed websocket: got %v %v, want 502", err, resp)
	}

	// a browser gets a page
	status, body = call(t, alice, "GET", base+"/servers/alice/",
		http.Header{"Accept": {"text/html"}}, "")
	if status != http.StatusBadGateway || !strings.Contains(string(body), "<html") {
		t.Errorf("crashed, browser: got %d, want a 502 page", status)
	}
}

// TestStartingWaits: a request to a server that is starting waits for it
// briefly instead of failing.
func TestStartingWaits(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	alice := clients["alice"]
	if _, err := env.Replicas[0].Manager.Stop(context.Background(), "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	env.Driver.SetStartDelay(time.Second)
	go env.Replicas[0].Manager.Start(context.Background(), "alice", "alice")
	waitFor(t, "server to be starting", func() bool {
		s, err := env.Replicas[0].Registry.Get(context.Background(), "alice")
		return err == nil && s.State == "starting"
	})

	status, body := call(t, alice, "GET", env.Replicas[1].URL+"/servers/alice/x", nil, "")
	if status != http.StatusOK {
		t.Errorf("got %d %s, want 200 once started", status, body)
	}
}

// TestOperations: health, readiness and metrics.
func TestOperations(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	r := env.Replicas[0]
	c := env.Client(t)
	for _, path := range []string{"healthz", "readyz"} {
		if status, body := call(t, c, "GET", r.URL+env.Prefix+path, nil, ""); status != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", path, status, body)
		}
	}

	call(t, clients["bob"], "GET", r.URL+"/servers/alice/x", nil, "")
	call(t, clients["mallory"], "GET", r.URL+"/servers/alice/x", nil, "")
	if _, _, err := dialWS(t, env, clients["bob"], r.URL, "/servers/alice/ws", nil); err != nil {
		t.Fatal(err)
	}

	status, body := apiWrite(t, env, clients["alice"], r.URL, "POST", "api/servers/alice/start", "")
	if status != http.StatusOK {
		t.Fatalf("start: got %d %s", status, body)
	}
	rec := httptest.NewRecorder()
	r.Proxy.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`studio_proxy_requests_total{outcome="forwarded"}`,
		`studio_proxy_requests_total{outcome="no_access"}`,
		`studio_proxy_decision_seconds_count{source="cache"}`,
		`studio_proxy_websockets_open 1`,
		`studio_proxy_lifecycle_total{action="start",result="ok"}`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// waitFor polls cond for up to cutDeadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(cutDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", cutDeadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
