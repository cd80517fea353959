package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/studio-proxy/studio-proxy/internal/testenv"
	"github.com/studio-proxy/studio-proxy/proxy"
)

// cutDeadline is how long a test waits for a connection to be cut. The
// proxy aims at well under a second; the test only fails when something
// is plainly broken.
const cutDeadline = 10 * time.Second

// TestRevokeAcrossReplicas: a revoke issued on replica A closes the
// grantee's websocket held on replica B, and their next request there
// gets 403.
func TestRevokeAcrossReplicas(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	a, b := env.Replicas[0], env.Replicas[1]
	bob := clients["bob"]

	conn, _, err := dialWS(t, env, bob, b.URL, "/servers/alice/ws", nil)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	if w := whoami(t, conn); w.User != "bob" {
		t.Fatalf("got user %q, want bob", w.User)
	}
	// a decision for bob is now cached on replica B
	status, body := call(t, bob, "GET", b.URL+"/servers/alice/x", nil, "")
	if status != http.StatusOK {
		t.Fatalf("before revoke: got %d %s, want 200", status, body)
	}

	if err := a.Authz.Revoke(context.Background(), env.User(t, "alice"), "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	ce := waitClose(t, conn, cutDeadline)
	if ce.Code != proxy.CloseRevoked || !strings.Contains(ce.Text, "removed") {
		t.Errorf("got close %d %q, want %d with a reason", ce.Code, ce.Text, proxy.CloseRevoked)
	}
	status, body = call(t, bob, "GET", b.URL+"/servers/alice/x", nil, "")
	if status != http.StatusForbidden || errorCode(body) != "no_access" {
		t.Errorf("after revoke: got %d %s, want 403 no_access", status, body)
	}
	if _, resp, err := dialWS(t, env, bob, b.URL, "/servers/alice/ws", nil); err == nil ||
		resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("websocket after revoke: got err %v resp %v, want 403", err, resp)
	}
}

// TestChangeKeepsAccess: a grantee who only loses start/stop keeps their
// websocket; one whose share is revoked on another replica loses an open
// event stream too.
func TestChangeKeepsAccess(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	a, b := env.Replicas[0], env.Replicas[1]
	dave := clients["dave"]

	conn, _, err := dialWS(t, env, dave, b.URL, "/servers/alice/ws", nil)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	_, err = a.Authz.SetStartStop(context.Background(), env.User(t, "alice"), "alice", "dave", false)
	if err != nil {
		t.Fatal(err)
	}
	// the change reaches replica B: dave may no longer stop the server
	deadline := time.Now().Add(cutDeadline)
	for {
		status, _ := apiWrite(t, env, dave, b.URL, "POST", "api/servers/alice/stop", "")
		if status == http.StatusForbidden {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stop still answers %d after the change", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// ... and the websocket is still there (a wrong cut would have come
	// with the re-decision that the change started)
	time.Sleep(300 * time.Millisecond)
	if w := whoami(t, conn); w.User != "dave" {
		t.Errorf("got user %q, want dave", w.User)
	}
}

// TestRevokeCutsStreams: long-lived HTTP requests are cut by a revoke
// too: an event stream mid-response, and an upload whose body is still
// coming in.
func TestRevokeCutsStreams(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	a, b := env.Replicas[0], env.Replicas[1]
	bob := clients["bob"]

	// an event stream that has started
	resp, err := bob.Get(b.URL + "/servers/alice/" + testenv.StreamPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewReader(resp.Body)
	if line, err := events.ReadString('\n'); err != nil || line != "data: bob\n" {
		t.Fatalf("first event: got %q %v, want data: bob", line, err)
	}

	// an upload that keeps its body open: the demo server reads bodies
	// to the end before it answers
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", b.URL+"/servers/alice/upload", pr)
	req.Header.Set("Origin", env.ExternalURL)
	req.Header.Set("Accept", "application/json")
	upload := make(chan int, 1)
	go func() {
		resp, err := bob.Do(req)
		if err != nil {
			upload <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		upload <- resp.StatusCode
	}()
	pw.Write([]byte("some bytes"))
	// wait until the backend has the upload in hand (its first bytes
	// went through the proxy); there is no event to wait for
	time.Sleep(200 * time.Millisecond)

	if err := a.Authz.Revoke(context.Background(), env.User(t, "alice"), "alice", "bob"); err != nil {
		t.Fatal(err)
	}

	streamEnded := make(chan error, 1)
	go func() {
		for {
			if _, err := events.ReadString('\n'); err != nil {
				streamEnded <- err
				return
			}
		}
	}()
	select {
	case <-streamEnded:
	case <-time.After(cutDeadline):
		t.Error("event stream still open after the revoke")
	}
	select {
	case status := <-upload:
		if status != http.StatusForbidden {
			t.Errorf("upload: got status %d, want 403", status)
		}
	case <-time.After(cutDeadline):
		t.Error("upload still in flight after the revoke")
	}
}

// TestStopClosesWebsockets: a server that stops closes its websockets
// with CloseServerStopped, on every replica.
func TestStopClosesWebsockets(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	conn, _, err := dialWS(t, env, clients["bob"], env.Replicas[1].URL, "/servers/alice/ws", nil)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	status, body := apiWrite(t, env, clients["alice"], env.Replicas[0].URL, "POST",
		"api/servers/alice/stop", "")
	if status != http.StatusOK {
		t.Fatalf("stop: got %d %s", status, body)
	}
	if ce := waitClose(t, conn, cutDeadline); ce.Code != proxy.CloseServerStopped &&
		ce.Code != websocket.CloseGoingAway {
		t.Errorf("got close %d %q, want %d or 1001", ce.Code, ce.Text, proxy.CloseServerStopped)
	}
}

// TestLogoutClosesWebsockets: signing out closes that session's
// websockets on every replica, and no others.
func TestLogoutClosesWebsockets(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	b := env.Replicas[1].URL
	other := env.Login(t, "bob") // bob's second session

	conn, _, err := dialWS(t, env, clients["bob"], b, "/servers/alice/ws", nil)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	keep, _, err := dialWS(t, env, other, b, "/servers/alice/ws", nil)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}

	status, body := call(t, clients["bob"], "POST", env.ExternalURL+env.Prefix+"logout",
		http.Header{"Origin": {env.ExternalURL}}, "")
	if status != http.StatusOK {
		t.Fatalf("logout: got %d %s, want 200 after redirects", status, body)
	}
	if ce := waitClose(t, conn, cutDeadline); ce.Code != proxy.CloseSignedOut {
		t.Errorf("got close %d %q, want %d", ce.Code, ce.Text, proxy.CloseSignedOut)
	}
	if w := whoami(t, keep); w.User != "bob" {
		t.Errorf("other session: got user %q, want bob", w.User)
	}
}

// TestShutdownClosesWebsockets: a replica that shuts down says "going
// away".
func TestShutdownClosesWebsockets(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	r := env.Replicas[1]
	conn, _, err := dialWS(t, env, clients["alice"], r.URL, "/servers/alice/ws", nil)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cutDeadline)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.Proxy.Shutdown(ctx) }()
	if ce := waitClose(t, conn, cutDeadline); ce.Code != websocket.CloseGoingAway {
		t.Errorf("got close %d %q, want 1001", ce.Code, ce.Text)
	}
	if err := <-errc; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	status, _ := call(t, clients["alice"], "GET", r.URL+env.Prefix+"readyz", nil, "")
	if status != http.StatusServiceUnavailable {
		t.Errorf("readyz after shutdown: got %d, want 503", status)
	}
	if _, resp, err := dialWS(t, env, clients["alice"], r.URL, "/servers/alice/ws", nil); err == nil ||
		resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("websocket after shutdown: got %v %v, want 503", err, resp)
	}
}
