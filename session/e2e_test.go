package session

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/internal/devidp"
	"github.com/studio-proxy/studio-proxy/internal/events"
)

// devIdP is the development provider on a test server.
type devIdP struct {
	srv  *httptest.Server
	late *lateHandler
	p    *devidp.Provider
}

func newDevIdP(t *testing.T) *devIdP {
	t.Helper()
	late := &lateHandler{}
	srv := httptest.NewServer(late)
	t.Cleanup(srv.Close)
	return &devIdP{srv: srv, late: late}
}

const (
	testClientID     = "studio-proxy"
	testClientSecret = "dev-secret"
)

// configure makes the provider, with the callback and signed-out page of
// every proxy registered.
func (d *devIdP) configure(t *testing.T, mod func(*devidp.Config), proxies ...*proxy) {
	t.Helper()
	cfg := devidp.Config{
		Issuer:       d.srv.URL,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		Log:          slog.New(slog.DiscardHandler),
	}
	for _, p := range proxies {
		cfg.RedirectURIs = append(cfg.RedirectURIs, p.url("/studio/callback"))
		cfg.PostLogoutRedirectURIs = append(cfg.PostLogoutRedirectURIs, p.url("/studio/signed-out"))
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := devidp.New(cfg)
	if err != nil {
		t.Fatalf("devidp.New: %v", err)
	}
	d.p = p
	d.late.set(p.Handler())
}

// devConfig points a Manager at the provider, with the dev provider's
// admin group.
func (d *devIdP) devConfig(c *Config) {
	c.Issuer = d.srv.URL
	c.ClientID = testClientID
	c.ClientSecret = testClientSecret
	c.AdminGroup = devidp.AdminGroup
}

// signIn navigates to path on the proxy and signs in as user at the
// development provider, returning where the browser landed.
func signIn(t *testing.T, b *browser, p *proxy, path, user string) (*http.Response, string) {
	t.Helper()
	resp, page := b.navigate(p.url(path))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d on the way to the login page, want 200: %.300s", resp.StatusCode, page)
	}
	return b.signInDev(resp, page, user, devidp.DefaultPassword)
}

func TestSignInLandsWhereRequestedAndLogoutEndsIt(t *testing.T) {
	r := startRedis(t)
	sub := r.subscriber(t)
	rec := r.recorder(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	idp.configure(t, nil, p)
	dir := r.directory(t)
	var hooked []string
	p.start(t, r, func(c *Config) {
		idp.devConfig(c)
		c.Directory = dir
		c.Events = sub
		c.OnSignIn = func(ctx context.Context, u authz.User) error {
			hooked = append(hooked, u.Name)
			return nil
		}
	})

	cases := []struct {
		user  string
		name  string
		admin bool
	}{
		{"alice", "Alice Archer", false},
		{"bob", "Bob Baker", false},
		{"carol", "Carol Cole", true},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			b := newBrowser(t, nil)
			resp, body := signIn(t, b, p, "/lab/tree/notes.ipynb?kernel=python3", tc.user)
			got := decodeWhoami(t, resp, body)
			want := whoami{
				User: tc.user, Name: tc.name, Org: "acme", Admin: tc.admin,
				Path: "/lab/tree/notes.ipynb?kernel=python3", ID: got.ID,
			}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}

			// the directory knows them, the hook ran
			u := directoryUser(t, dir, tc.user)
			if u.Org != "acme" || u.Admin != tc.admin || u.LastLogin.IsZero() || u.DisplayName != tc.name {
				t.Errorf("got directory entry %+v, want %s of acme, admin %v, last login set",
					u, tc.name, tc.admin)
			}
			if hooked[len(hooked)-1] != tc.user {
				t.Errorf("got OnSignIn calls %v, want last %s", hooked, tc.user)
			}

			// the cookie holds the id, Redis the session under its hash
			cookie := b.cookie(p.url("/"), "studio_session")
			if !sessionExists(t, r, cookie) {
				t.Fatal("got no session in Redis after sign-in")
			}
			id, _ := parseID(cookie)
			if got.ID != hashID(id) || strings.Contains(got.ID, cookie) {
				t.Errorf("got session ID %q, want the hash of the cookie", got.ID)
			}

			// the session works for API calls too
			resp, body = b.api(p.url("/api/contents"))
			if w := decodeWhoami(t, resp, body); w.User != tc.user {
				t.Errorf("got API user %q, want %q", w.User, tc.user)
			}

			// logout: confirmation page, then the POST
			resp, body = b.navigate(p.url("/studio/logout"))
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `method="post"`) {
				t.Fatalf("got status %d, want the sign-out page: %.300s", resp.StatusCode, body)
			}
			b.resetTrail()
			req, _ := http.NewRequest(http.MethodPost, p.url("/studio/logout"), nil)
			req.Header.Set("Origin", p.srv.URL)
			req.Header.Set("Accept", "text/html")
			resp, body = b.do(b.client, req)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are signed out") {
				t.Fatalf("got status %d at %s, want the signed-out page: %.300s",
					resp.StatusCode, resp.Request.URL, body)
			}

			// it went through the provider's end-session endpoint, with
			// the ID token as hint and our signed-out page to return to
			var endSession *url.URL
			for _, r := range b.trailResponses() {
				if strings.HasPrefix(r.Request.URL.String(), idp.srv.URL+"/end_session") {
					endSession = r.Request.URL
				}
			}
			if endSession == nil {
				t.Fatal("got no request to the provider's end-session endpoint")
			}
			q := endSession.Query()
			if q.Get("id_token_hint") == "" ||
				q.Get("post_logout_redirect_uri") != p.url("/studio/signed-out") {
				t.Errorf("got end-session query %v, want id_token_hint and our signed-out page", q)
			}

			if b.cookie(p.url("/"), "studio_session") != "" {
				t.Error("got a session cookie after logout, want none")
			}
			if sessionExists(t, r, cookie) {
				t.Error("got the session in Redis after logout, want it deleted")
			}
			ev := rec.wait(t, events.Logout)
			if ev.Session != got.ID || ev.User != tc.user {
				t.Errorf("got logout event %+v, want session %s of %s", ev, got.ID, tc.user)
			}

			// the old cookie is worthless now
			resp, body = b.withCookie(b.client, p.url("/api/x"), cookie, "application/json")
			if resp.StatusCode != http.StatusUnauthorized || jsonErrorCode(t, body) != "signed_out" {
				t.Errorf("got status %d %s with the old cookie, want 401 signed_out", resp.StatusCode, body)
			}
		})
	}
}

func TestSecureCookieOnHTTPS(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p := newProxy(t, true)
	idp.configure(t, nil, p)
	p.start(t, r, idp.devConfig)

	tr := p.srv.Client().Transport
	b := newBrowser(t, tr)
	resp, body := signIn(t, b, p, "/lab", "alice")
	if w := decodeWhoami(t, resp, body); w.User != "alice" {
		t.Fatalf("got user %q, want alice", w.User)
	}

	var set *http.Cookie
	for _, r := range b.trailResponses() {
		for _, c := range r.Cookies() {
			if c.Name == "__Host-studio_session" && c.Value != "" {
				set = c
			}
		}
	}
	if set == nil {
		t.Fatal("got no __Host-studio_session cookie on https")
	}
	if !set.Secure || !set.HttpOnly || set.SameSite != http.SameSiteLaxMode ||
		set.Path != "/" || set.Domain != "" {
		t.Errorf("got cookie %+v, want Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", set)
	}
	if set.MaxAge != int(DefaultLifetime.Seconds()) {
		t.Errorf("got Max-Age %d, want %d", set.MaxAge, int(DefaultLifetime.Seconds()))
	}
}

func TestOrganizationRules(t *testing.T) {
	cases := []struct {
		name     string
		orgs     []string
		user     string
		wantOrg  string
		wantCode string
	}{
		{name: "any org allowed", user: "mallory", wantOrg: "other"},
		{name: "listed org", orgs: []string{"acme"}, user: "bob", wantOrg: "acme"},
		{name: "other org refused", orgs: []string{"acme"}, user: "mallory", wantCode: "wrong_org"},
		{name: "user without org refused", user: "nobody", wantCode: "wrong_org"},
	}
	r := startRedis(t)
	idp := newDevIdP(t)
	users := append(devidp.DefaultUsers(), devidp.User{Username: "nobody", Name: "No Body"})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, false)
			idp.configure(t, func(c *devidp.Config) { c.Users = users }, p)
			p.start(t, r, func(c *Config) {
				idp.devConfig(c)
				c.Orgs = tc.orgs
			})
			b := newBrowser(t, nil)
			resp, body := signIn(t, b, p, "/", tc.user)
			if tc.wantCode != "" {
				if resp.StatusCode != http.StatusForbidden || pageCode(body) != tc.wantCode {
					t.Fatalf("got status %d code %q, want 403 %s: %.300s",
						resp.StatusCode, pageCode(body), tc.wantCode, body)
				}
				if c := b.cookie(p.url("/"), "studio_session"); c != "" {
					t.Errorf("got a session cookie for a refused user")
				}
				return
			}
			if w := decodeWhoami(t, resp, body); w.Org != tc.wantOrg {
				t.Errorf("got org %q, want %q", w.Org, tc.wantOrg)
			}
		})
	}
}

func TestProviderErrorShownAsPage(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	idp.configure(t, nil, p)
	p.start(t, r, idp.devConfig)

	b := newBrowser(t, nil)
	resp, page := b.navigate(p.url("/lab"))
	m := formIDRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("not on the login page: %.300s", page)
	}
	form := url.Values{"id": {m[1]}, "action": {"cancel"}}
	resp, body := b.postForm(b.client, resp.Request.URL.String(), form)

	if resp.StatusCode != http.StatusForbidden || pageCode(body) != "provider_error" {
		t.Fatalf("got status %d code %q, want 403 provider_error: %.400s",
			resp.StatusCode, pageCode(body), body)
	}
	if !strings.Contains(body, "cancelled or refused") || !strings.Contains(body, "Sign in again") {
		t.Errorf("got page without a clear message and a way back: %.400s", body)
	}
	if resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("got content type %q, want html", resp.Header.Get("Content-Type"))
	}
}

// TestStateIsSingleUseAndBoundToTheBrowser stops at the provider's
// redirect back to the proxy and replays or tampers with it.
func TestStateIsSingleUseAndBoundToTheBrowser(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	idp.configure(t, nil, p)
	p.start(t, r, idp.devConfig)

	// callbackURL signs in at the provider and returns the URL it sends
	// the browser back to, without following it
	callbackURL := func(b *browser) string {
		t.Helper()
		resp, page := b.navigate(p.url("/lab"))
		m := formIDRe.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("not on the login page: %.300s", page)
		}
		form := url.Values{"id": {m[1]}, "username": {"alice"},
			"password": {devidp.DefaultPassword}, "action": {"login"}}
		c := b.noFollow()
		resp, _ = b.postForm(c, resp.Request.URL.String(), form)
		for i := 0; i < 5; i++ {
			loc, err := resp.Location()
			if err != nil {
				t.Fatalf("got status %d without a redirect", resp.StatusCode)
			}
			if strings.HasPrefix(loc.String(), p.url("/studio/callback")) {
				return loc.String()
			}
			req, _ := http.NewRequest(http.MethodGet, loc.String(), nil)
			resp, _ = b.do(c, req)
		}
		t.Fatal("never redirected to the callback")
		return ""
	}
	withState := func(u, state string) string {
		pu, _ := url.Parse(u)
		q := pu.Query()
		q.Set("state", state)
		pu.RawQuery = q.Encode()
		return pu.String()
	}

	b := newBrowser(t, nil)
	cb := callbackURL(b)
	pu, _ := url.Parse(cb)
	state := pu.Query().Get("state")

	steps := []struct {
		name     string
		browser  *browser
		url      string
		wantCode string
	}{
		{"wrong state", b, withState(cb, state[:len(state)-2]+"xx"), "invalid_state"},
		{"missing state", b, withState(cb, ""), "invalid_state"},
		{"right state", b, cb, ""},
		{"replayed state", b, cb, "invalid_state"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.browser.resetTrail()
			resp, body := s.browser.navigate(s.url)
			if s.wantCode == "" {
				if w := decodeWhoami(t, resp, body); w.User != "alice" || w.Path != "/lab" {
					t.Errorf("got %+v, want alice at /lab", w)
				}
				return
			}
			if resp.StatusCode != http.StatusBadRequest || pageCode(body) != s.wantCode {
				t.Errorf("got status %d code %q, want 400 %s", resp.StatusCode, pageCode(body), s.wantCode)
			}
		})
	}

	// a callback URL that reaches another browser (sent in a link, say)
	// is refused there, and used up
	t.Run("another browser", func(t *testing.T) {
		cb := callbackURL(newBrowser(t, nil))
		other := newBrowser(t, nil)
		resp, body := other.navigate(cb)
		if resp.StatusCode != http.StatusBadRequest || pageCode(body) != "invalid_state" {
			t.Errorf("got status %d code %q, want 400 invalid_state", resp.StatusCode, pageCode(body))
		}
		if other.cookie(p.url("/"), "studio_session") != "" {
			t.Error("got a session cookie in the other browser")
		}
	})
}

func TestReturnAddressConfinedToThisOrigin(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	idp.configure(t, nil, p)
	p.start(t, r, idp.devConfig)

	cases := []struct {
		name string
		rd   string
		want string
	}{
		{"local path", "/lab/tree?x=1", "/lab/tree?x=1"},
		{"absolute URL", "https://evil.example/", "/studio/"},
		{"scheme-relative", "//evil.example/x", "/studio/"},
		{"backslash", "/\\evil.example", "/studio/"},
		{"encoded slashes", "/%2F%2Fevil.example", "/studio/"},
		{"javascript", "javascript:alert(1)", "/studio/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, nil)
			resp, page := b.navigate(p.url("/studio/login?rd=" + url.QueryEscape(tc.rd)))
			resp, body := b.signInDev(resp, page, "alice", devidp.DefaultPassword)
			landed := resp.Request.URL
			if landed.RequestURI() != tc.want || landed.Host != p.srv.Listener.Addr().String() {
				t.Errorf("landed on %s, want %s on the proxy: %.200s", resp.Request.URL, tc.want, body)
			}
		})
	}

	// a request for "//host" on the proxy itself must not carry it into rd
	t.Run("request path", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = "//evil.example/x"
		req.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		p.m.Require(http.HandlerFunc(protected)).ServeHTTP(w, req)
		if loc := w.Header().Get("Location"); loc != "/studio/login?rd=%2Fstudio%2F" {
			t.Errorf("got Location %q, want /studio/login?rd=%%2Fstudio%%2F", loc)
		}
	})
}

func TestBadCookiesAreSignedOut(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	idp.configure(t, nil, p)
	p.start(t, r, idp.devConfig)

	b := newBrowser(t, nil)
	signIn(t, b, p, "/", "alice")
	good := b.cookie(p.url("/"), "studio_session")
	tampered := []byte(good)
	if tampered[5] == 'A' {
		tampered[5] = 'B'
	} else {
		tampered[5] = 'A'
	}
	_, unknown := newID()

	cases := []struct {
		name, value string
	}{
		{"tampered", string(tampered)},
		{"unknown id", unknown},
		{"garbage", "not-a-session"},
		{"too long", good + "AA"},
		{"truncated", good[:len(good)-1]},
		{"empty", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newBrowser(t, nil)
			resp, body := c.withCookie(c.noFollow(), p.url("/lab"), tc.value, "application/json")
			if resp.StatusCode != http.StatusUnauthorized || jsonErrorCode(t, body) != "signed_out" {
				t.Errorf("API: got status %d %.200s, want 401 signed_out", resp.StatusCode, body)
			}
			resp, _ = c.withCookie(c.noFollow(), p.url("/lab"), tc.value, "text/html")
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusFound || loc != "/studio/login?rd=%2Flab" {
				t.Errorf("navigation: got status %d Location %q, want 302 to login",
					resp.StatusCode, resp.Header.Get("Location"))
			}
			req := cookieRequest(t, p.url("/lab"), "studio_session", tc.value, "")
			if _, err := p.m.Authenticate(req); !errors.Is(err, ErrSignedOut) {
				t.Errorf("got Authenticate error %v, want ErrSignedOut", err)
			}
		})
	}

	// the good one still works
	resp, body := b.api(p.url("/x"))
	if w := decodeWhoami(t, resp, body); w.User != "alice" {
		t.Errorf("got user %q, want alice", w.User)
	}
}

func TestRefresh(t *testing.T) {
	r := startRedis(t)
	rec := r.recorder(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	idp.configure(t, func(c *devidp.Config) { c.AccessTokenLifetime = 5 * time.Minute }, p)
	clk := newClock()
	p.start(t, r, func(c *Config) {
		idp.devConfig(c)
		c.Now = clk.Now
	})

	b := newBrowser(t, nil)
	signIn(t, b, p, "/", "alice")
	cookie := b.cookie(p.url("/"), "studio_session")
	id, _ := parseID(cookie)
	hash := hashID(id)
	sealedTokens := func() tokens {
		t.Helper()
		st, err := p.m.load(context.Background(), hash)
		if err != nil {
			t.Fatalf("loading session: %v", err)
		}
		tk, err := unseal(id, hash, st.rec.Sealed)
		if err != nil {
			t.Fatalf("unsealing tokens: %v", err)
		}
		return tk
	}
	first := sealedTokens()
	if first.Refresh == "" || first.Access == "" || first.ID == "" {
		t.Fatalf("got tokens %+v, want access, refresh and ID tokens", first)
	}

	// close to expiry: the next request refreshes
	clk.Advance(4*time.Minute + 30*time.Second)
	if resp, body := b.api(p.url("/x")); decodeWhoami(t, resp, body).User != "alice" {
		t.Fatal("not signed in after refresh")
	}
	second := sealedTokens()
	if second.Access == first.Access || second.Refresh == first.Refresh {
		t.Fatal("got the same tokens after the refresh time, want new ones (rotated refresh token)")
	}

	// before it is due again, nothing changes
	clk.Advance(time.Minute)
	b.api(p.url("/x"))
	if sealedTokens() != second {
		t.Error("got tokens refreshed before they were due")
	}

	// the provider revokes them: the next refresh fails, the session ends
	idp.p.RevokeTokens("alice")
	clk.Advance(5 * time.Minute)
	resp, body := b.api(p.url("/x"))
	if resp.StatusCode != http.StatusUnauthorized || jsonErrorCode(t, body) != "signed_out" {
		t.Fatalf("got status %d %.200s after a refused refresh, want 401 signed_out",
			resp.StatusCode, body)
	}
	if sessionExists(t, r, cookie) {
		t.Error("got the session in Redis after a refused refresh, want it deleted")
	}
	if ev := rec.wait(t, events.Logout); ev.Session != hash {
		t.Errorf("got logout event for %s, want %s", ev.Session, hash)
	}
}

func TestIdleTimeoutAndLifetime(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	// tokens outlive the test's clock jumps: this test is about the
	// session's own limits, not about refreshing
	idp.configure(t, func(c *devidp.Config) {
		c.AccessTokenLifetime = 24 * time.Hour
		c.IDTokenLifetime = 24 * time.Hour
	}, p)
	clk := newClock()
	sub := r.subscriber(t)
	p.start(t, r, func(c *Config) {
		idp.devConfig(c)
		c.Now = clk.Now
		c.Events = sub
		c.Lifetime = 3 * time.Hour
		c.IdleTimeout = time.Hour
	})

	signedIn := func(b *browser) bool {
		t.Helper()
		resp, _ := b.api(p.url("/x"))
		return resp.StatusCode == http.StatusOK
	}

	t.Run("idle", func(t *testing.T) {
		b := newBrowser(t, nil)
		signIn(t, b, p, "/", "alice")
		cookie := b.cookie(p.url("/"), "studio_session")
		steps := []struct {
			advance time.Duration
			want    bool
		}{
			{40 * time.Minute, true},
			{40 * time.Minute, true}, // 80 minutes in, but used 40 minutes ago
			{59 * time.Minute, true},
			{61 * time.Minute, false},
		}
		for i, s := range steps {
			clk.Advance(s.advance)
			if got := signedIn(b); got != s.want {
				t.Fatalf("step %d: got signed in %v, want %v", i, got, s.want)
			}
		}
		if sessionExists(t, r, cookie) {
			t.Error("got an idle session still in Redis, want it deleted")
		}
	})

	t.Run("lifetime", func(t *testing.T) {
		b := newBrowser(t, nil)
		signIn(t, b, p, "/", "bob")
		for i := 0; i < 5; i++ {
			clk.Advance(35 * time.Minute)
			if !signedIn(b) {
				t.Fatalf("signed out %v after sign-in, want signed in", time.Duration(i+1)*35*time.Minute)
			}
		}
		clk.Advance(10 * time.Minute) // 3h05m
		if signedIn(b) {
			t.Fatal("got signed in after the lifetime, want signed out")
		}
	})
}

// TestCacheAcrossReplicas runs two Managers (two replicas) on one Redis:
// what one ends, the other stops accepting at once, without waiting for
// its next look at Redis.
func TestCacheAcrossReplicas(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p1, p2 := newProxy(t, false), newProxy(t, false)
	idp.configure(t, nil, p1, p2)
	dir := r.directory(t)
	for _, p := range []*proxy{p1, p2} {
		sub := r.subscriber(t)
		p.start(t, r, func(c *Config) {
			idp.devConfig(c)
			c.Events = sub
			c.Directory = dir
		})
	}

	// signInBoth signs in at p1 and uses the session at p2, so that p2
	// caches it; it returns the cookie
	signInBoth := func(t *testing.T, user string) string {
		t.Helper()
		b := newBrowser(t, nil)
		signIn(t, b, p1, "/", user)
		cookie := b.cookie(p1.url("/"), "studio_session")
		resp, body := b.withCookie(b.client, p2.url("/x"), cookie, "application/json")
		if w := decodeWhoami(t, resp, body); w.User != user {
			t.Fatalf("got user %q at the second replica, want %s", w.User, user)
		}
		id, _ := parseID(cookie)
		if _, ok := p2.m.cache.get(hashID(id)); !ok {
			t.Fatal("session not cached at the second replica")
		}
		return cookie
	}
	status := func(t *testing.T, p *proxy, cookie string) int {
		t.Helper()
		c := newBrowser(t, nil)
		resp, _ := c.withCookie(c.client, p.url("/x"), cookie, "application/json")
		return resp.StatusCode
	}
	dropped := func(p *proxy, cookie string) func() bool {
		id, _ := parseID(cookie)
		return func() bool { _, ok := p.m.cache.get(hashID(id)); return !ok }
	}

	t.Run("logout", func(t *testing.T) {
		cookie := signInBoth(t, "alice")
		req, _ := http.NewRequest(http.MethodPost, p1.url("/studio/logout"), nil)
		req.AddCookie(&http.Cookie{Name: "studio_session", Value: cookie})
		req.Header.Set("Origin", p1.srv.URL)
		resp, err := newBrowser(t, nil).noFollow().Do(req)
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: got %v %v, want 303", resp.StatusCode, err)
		}
		eventually(t, "the second replica to drop the session", dropped(p2, cookie))
		if got := status(t, p2, cookie); got != http.StatusUnauthorized {
			t.Errorf("got status %d at the second replica after logout, want 401", got)
		}
	})

	t.Run("end all sessions", func(t *testing.T) {
		c1 := signInBoth(t, "bob")
		c2 := signInBoth(t, "bob")
		keep := signInBoth(t, "carol")
		n, err := p1.m.EndSessions(context.Background(), "Bob", "carol")
		if err != nil || n != 2 {
			t.Fatalf("EndSessions: got %d, %v, want 2, nil", n, err)
		}
		for _, c := range []string{c1, c2} {
			eventually(t, "the second replica to drop bob's sessions", dropped(p2, c))
			if got := status(t, p2, c); got != http.StatusUnauthorized {
				t.Errorf("got status %d for an ended session, want 401", got)
			}
		}
		if got := status(t, p2, keep); got != http.StatusOK {
			t.Errorf("got status %d for carol's session, want 200", got)
		}
	})

	t.Run("user changed", func(t *testing.T) {
		// an admin flag given elsewhere (a sign-in on another device, an
		// operator): the directory announces it, both replicas drop
		// alice's sessions from their caches
		cookie := signInBoth(t, "alice")
		u := directoryUser(t, dir, "alice")
		u.Admin = true
		if err := dir.PutUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the second replica to drop alice's session", dropped(p2, cookie))
		c := newBrowser(t, nil)
		resp, body := c.withCookie(c.client, p2.url("/x"), cookie, "application/json")
		if w := decodeWhoami(t, resp, body); !w.Admin {
			t.Error("got admin false after the directory made alice admin, want true")
		}
	})
}

func TestRedisDownIsNotSignedIn(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	idp.configure(t, nil, p)
	sub := r.subscriber(t)
	p.start(t, r, func(c *Config) {
		idp.devConfig(c)
		c.Events = sub
	})

	b := newBrowser(t, nil)
	signIn(t, b, p, "/", "alice")
	if resp, body := b.api(p.url("/x")); decodeWhoami(t, resp, body).User != "alice" {
		t.Fatal("not signed in")
	}

	r.srv.Stop()
	eventually(t, "the subscriber to notice Redis is down", func() bool { return !sub.Subscribed() })

	resp, body := b.api(p.url("/x"))
	if resp.StatusCode != http.StatusServiceUnavailable || jsonErrorCode(t, body) != "unavailable" {
		t.Errorf("API: got status %d %.200s, want 503 unavailable", resp.StatusCode, body)
	}
	resp, body = b.navigate(p.url("/lab"))
	if resp.StatusCode != http.StatusServiceUnavailable || pageCode(body) != "unavailable" {
		t.Errorf("navigation: got status %d code %q, want 503 unavailable page",
			resp.StatusCode, pageCode(body))
	}
	req := cookieRequest(t, p.url("/x"), "studio_session", b.cookie(p.url("/"), "studio_session"), "")
	_, err := p.m.Authenticate(req)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrSignedOut) {
		t.Errorf("got Authenticate error %v, want ErrUnavailable and not ErrSignedOut", err)
	}

	// a restarted Redis has lost the session: signed out, not a guess
	r.srv.Restart()
	eventually(t, "the subscriber to come back", sub.Subscribed)
	resp, body = b.api(p.url("/x"))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("got status %d after Redis lost the session, want 401: %.200s", resp.StatusCode, body)
	}
}
