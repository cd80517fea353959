package proxy_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

// TestForgedIdentityHeaders: whatever identity a client claims in
// headers, the backend sees the proxy's word only.
func TestForgedIdentityHeaders(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	bob := clients["bob"]
	forged := http.Header{
		"X-Studio-User":        {"alice"},
		"X_Studio_User":        {"alice"},
		"x_studio_user":        {"alice"},
		"X-Studio-Admin":       {"true"},
		"X-Forwarded-User":     {"alice"},
		"X_Forwarded_User":     {"alice"},
		"X-Forwarded-Email":    {"alice@acme.test"},
		"X-Forwarded-For":      {"10.9.9.9"},
		"X-Forwarded-Host":     {"evil.example"},
		"Forwarded":            {"for=10.9.9.9;host=evil.example"},
		"Remote-User":          {"alice"},
		"X-Remote-User":        {"alice"},
		"X-Auth-Request-User":  {"alice"},
		"X-Auth-Request-Email": {"alice@acme.test"},
		"Authorization":        {"token not-the-secret"},
		// the jar adds bob's own session cookie after these
		"Cookie":                   {"__Host-studio_session=forged; studio_login=x; keep=me"},
		"X-Unrelated-Header-Value": {"kept"},
	}

	status, body := call(t, bob, "GET", env.Replicas[1].URL+"/servers/alice/x", forged, "")
	if status != http.StatusOK {
		t.Fatalf("got %d %s, want 200 (the proxy's own token reached the backend)", status, body)
	}
	rep := report(t, body)
	if rep.User != "bob" {
		t.Errorf("backend saw user %q, want bob", rep.User)
	}
	for k := range rep.Header {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		switch {
		case n == "x-studio-user":
			if v := rep.Header[k]; len(v) != 1 || v[0] != "bob" {
				t.Errorf("backend got %s: %q, want exactly bob", k, v)
			}
		case n == "x-forwarded-for":
			if v := rep.Header[k]; len(v) != 1 || v[0] != "127.0.0.1" {
				t.Errorf("backend got %s: %q, want 127.0.0.1 only", k, v)
			}
		case n == "x-forwarded-host" || n == "x-forwarded-proto":
			if v := rep.Header[k]; len(v) != 1 || strings.Contains(v[0], "evil") {
				t.Errorf("backend got %s: %q, want the proxy's value", k, v)
			}
		case strings.HasPrefix(n, "x-studio-"), strings.HasPrefix(n, "x-forwarded-"),
			strings.HasPrefix(n, "x-auth-request-"), n == "remote-user", n == "x-remote-user",
			n == "forwarded":
			t.Errorf("backend got forged header %s: %q", k, rep.Header[k])
		}
	}
	if c := strings.Join(rep.Header["Cookie"], ";"); strings.Contains(c, "studio_") ||
		!strings.Contains(c, "keep=me") {
		t.Errorf("backend got cookies %q, want keep=me and none of the proxy's", c)
	}
	wantHost := strings.TrimPrefix(env.Replicas[1].URL, "http://")
	if got, want := rep.Header.Get("X-Forwarded-Host"), wantHost; got != want {
		t.Errorf("backend got X-Forwarded-Host %q, want %q", got, want)
	}
	if got := rep.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("backend got X-Forwarded-Proto %q, want http", got)
	}
	if rep.Header.Get("X-Unrelated-Header-Value") != "kept" {
		t.Error("an ordinary header was dropped")
	}

	// the same on a websocket
	hdr := forged.Clone()
	hdr.Del("Cookie") // the dialer's jar adds bob's session
	hdr.Set("Origin", env.ExternalURL)
	conn, _, err := dialWS(t, env, bob, env.Replicas[1].URL, "/servers/alice/ws", hdr)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	if w := whoami(t, conn); w.User != "bob" {
		t.Errorf("websocket backend saw user %q, want bob", w.User)
	}
}

// TestForeignOrigins: cross-site websockets, writes and API calls are
// refused before they reach a backend or change anything.
func TestForeignOrigins(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	alice := clients["alice"]
	base := env.Replicas[1].URL
	evil := "https://evil.example"

	tests := []struct {
		name   string
		do     func() (int, []byte)
		status int
		code   string
	}{
		{"websocket from a foreign origin", func() (int, []byte) {
			_, resp, err := dialWS(t, env, alice, base, "/servers/alice/ws", http.Header{"Origin": {evil}})
			if err == nil || resp == nil {
				return 101, nil
			}
			return resp.StatusCode, nil
		}, http.StatusForbidden, ""},
		{"websocket from a null origin", func() (int, []byte) {
			_, resp, err := dialWS(t, env, alice, base, "/servers/alice/ws", http.Header{"Origin": {"null"}})
			if err == nil || resp == nil {
				return 101, nil
			}
			return resp.StatusCode, nil
		}, http.StatusForbidden, ""},
		{"backend POST from a foreign origin", func() (int, []byte) {
			return call(t, alice, "POST", base+"/servers/alice/api/contents",
				http.Header{"Origin": {evil}}, "{}")
		}, http.StatusForbidden, "cross_site"},
		{"backend DELETE with a foreign referer", func() (int, []byte) {
			return call(t, alice, "DELETE", base+"/servers/alice/api/contents/x",
				http.Header{"Referer": {evil + "/page"}}, "")
		}, http.StatusForbidden, "cross_site"},
		{"start without the CSRF header", func() (int, []byte) {
			return call(t, alice, "POST", base+env.Prefix+"api/servers/alice/stop",
				http.Header{"Origin": {env.ExternalURL}}, "")
		}, http.StatusForbidden, "csrf"},
		{"stop from a foreign origin", func() (int, []byte) {
			return call(t, alice, "POST", base+env.Prefix+"api/servers/alice/stop",
				http.Header{"Origin": {evil}, "X-Studio-Csrf": {"1"}}, "")
		}, http.StatusForbidden, "csrf"},
		{"stop with no origin", func() (int, []byte) {
			return call(t, alice, "POST", base+env.Prefix+"api/servers/alice/stop",
				http.Header{"X-Studio-Csrf": {"1"}}, "")
		}, http.StatusForbidden, "csrf"},
		{"active server from a foreign origin", func() (int, []byte) {
			return call(t, alice, "PUT", base+env.Prefix+"api/active-server",
				http.Header{"Origin": {evil}, "X-Studio-Csrf": {"1"}}, `{"server":"alice"}`)
		}, http.StatusForbidden, "csrf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := tt.do()
			if status != tt.status || (tt.code != "" && errorCode(body) != tt.code) {
				t.Errorf("got %d %s, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}

	// nothing was stopped
	status, body := call(t, alice, "GET", base+"/servers/alice/x", nil, "")
	if status != http.StatusOK {
		t.Errorf("server after refused calls: got %d %s, want 200", status, body)
	}
}

// TestPathTricks: no path reaches a server other than the one decided,
// end to end. Mallory may use her own server only; bob alice's too.
func TestPathTricks(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	env.StartServer(t, "mallory", "mallory")
	base := env.Replicas[1].URL

	tests := []struct {
		who    string
		path   string
		status int
		server string // the server that must have answered, for 200
	}{
		{"mallory", "/servers/mallory/../alice/x", http.StatusBadRequest, ""},
		{"mallory", "/servers/mallory/%2e%2e/alice/x", http.StatusBadRequest, ""},
		{"mallory", "/servers/mallory%2F..%2Falice/x", http.StatusBadRequest, ""},
		{"mallory", "/servers/mallory/.%2E/alice/x", http.StatusBadRequest, ""},
		{"mallory", "/servers/./alice/x", http.StatusBadRequest, ""},
		{"mallory", "/servers/mallory\\..\\alice/x", http.StatusBadRequest, ""},
		{"mallory", "/servers/%61lice/x", http.StatusBadRequest, ""},
		{"mallory", "/servers/alice%00/x", http.StatusBadRequest, ""},
		{"mallory", "//servers/alice/x", http.StatusForbidden, ""},
		{"mallory", "/servers//alice/x", http.StatusForbidden, ""},
		{"mallory", "/servers/ALICE/x", http.StatusForbidden, ""},
		{"mallory", "/%73ervers/alice/x", http.StatusForbidden, ""},
		{"mallory", "/servers/mallory//x", http.StatusOK, "mallory"},
		{"bob", "/servers/ALICE/x", http.StatusOK, "alice"},
		{"bob", "//servers//alice//x", http.StatusOK, "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.who+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest("GET", base+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = "//" + req.URL.Host + tt.path // sent exactly as written
			req.Header.Set("Accept", "application/json")
			resp, err := clients[tt.who].Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusOK {
				var b strings.Builder
				buf := make([]byte, 4096)
				n, _ := resp.Body.Read(buf)
				b.Write(buf[:n])
				rep := report(t, []byte(b.String()))
				if rep.Server != tt.server || !strings.HasPrefix(rep.Path, "/servers/"+tt.server+"/") {
					t.Errorf("answered by %q at %q, want %q", rep.Server, rep.Path, tt.server)
				}
			}
		})
	}
}

// TestCookies: a tampered session cookie is signed out, an active-server
// cookie is validated like any input, and choosing a server one may not
// use leaves the cookie alone.
func TestCookies(t *testing.T) {
	env, clients := sharedEnv(t, testenv.Options{})
	base := env.ExternalURL
	u, _ := url.Parse(base)
	noFollow := func(c *http.Client) *http.Client {
		c2 := *c
		c2.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return &c2
	}

	t.Run("tampered session", func(t *testing.T) {
		c := env.Login(t, "bob")
		for _, ck := range c.Jar.Cookies(u) {
			if ck.Name == "studio_session" {
				ck.Value = ck.Value[:len(ck.Value)-2] + "xx"
				c.Jar.SetCookies(u, []*http.Cookie{ck})
			}
		}
		status, body := call(t, c, "GET", base+"/servers/alice/x", nil, "")
		if status != http.StatusUnauthorized {
			t.Errorf("got %d %s, want 401", status, body)
		}
	})

	t.Run("invalid active server ignored", func(t *testing.T) {
		c := env.Login(t, "bob")
		c.Jar.SetCookies(u, []*http.Cookie{{Name: "studio_server", Value: "../alice"}})
		resp, err := noFollow(c).Get(base + "/tree")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || loc != "/servers/bob/tree" {
			t.Errorf("got %d to %q, want 302 to /servers/bob/tree", resp.StatusCode, loc)
		}
	})

	t.Run("active server of someone else", func(t *testing.T) {
		c := env.Login(t, "mallory")
		c.Jar.SetCookies(u, []*http.Cookie{{Name: "studio_server", Value: "alice"}})
		status, body := call(t, c, "POST", base+"/api/contents", http.Header{"Origin": {base}}, "{}")
		if status != http.StatusForbidden {
			t.Errorf("got %d %s, want 403", status, body)
		}
		// the refusal cleared the cookie: mallory lands on her own server
		resp, err := noFollow(c).Get(base + "/tree")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/servers/mallory/tree" {
			t.Errorf("got redirect to %q, want /servers/mallory/tree", loc)
		}
	})

	t.Run("choose active server", func(t *testing.T) {
		bob := clients["bob"]
		status, body := apiWrite(t, env, bob, base, "PUT", "api/active-server", `{"server":"alice"}`)
		if status != http.StatusOK {
			t.Fatalf("choosing alice: got %d %s", status, body)
		}
		// a browser navigation is redirected to the pinned address
		resp, err := noFollow(bob).Get(base + "/tree?x=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/servers/alice/tree?x=1" {
			t.Errorf("got redirect to %q, want /servers/alice/tree?x=1", loc)
		}
		// anything else is forwarded below the server's base
		status, body = call(t, bob, "POST", base+"/api/contents", http.Header{"Origin": {base}}, "{}")
		if status != http.StatusOK || report(t, body).Path != "/servers/alice/api/contents" {
			t.Errorf("got %d %s, want 200 at /servers/alice/api/contents", status, body)
		}

		// a server bob may not use is refused, and the cookie stays
		status, body = apiWrite(t, env, bob, base, "PUT", "api/active-server", `{"server":"mallory"}`)
		if status != http.StatusForbidden || errorCode(body) != "no_access" {
			t.Errorf("choosing mallory: got %d %s, want 403 no_access", status, body)
		}
		status, body = apiWrite(t, env, bob, base, "PUT", "api/active-server", `{"server":"../x"}`)
		if status != http.StatusBadRequest {
			t.Errorf("choosing ../x: got %d %s, want 400", status, body)
		}
		resp, err = noFollow(bob).Get(base + "/tree")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != "/servers/alice/tree" {
			t.Errorf("after refusals: got redirect to %q, want /servers/alice/tree", loc)
		}
	})
}
