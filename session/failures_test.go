package session

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// signInFake signs in at the fake provider (which needs no form) and
// returns where the browser landed.
func signInFake(t *testing.T, b *browser, p *proxy) (*http.Response, string) {
	t.Helper()
	return b.navigate(p.url("/lab"))
}

// assertRefused checks a sign-in refusal: the status and code of the
// page, no session cookie, and no session in Redis.
func assertRefused(t *testing.T, r *testRedis, b *browser, p *proxy,
	resp *http.Response, body string, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || pageCode(body) != code {
		t.Fatalf("got status %d code %q, want %d %s: %.400s",
			resp.StatusCode, pageCode(body), status, code, body)
	}
	if !strings.Contains(body, "Sign in again") {
		t.Errorf("got a refusal page with no way to sign in again")
	}
	if c := b.cookie(p.url("/"), "studio_session"); c != "" {
		t.Error("got a session cookie after a refused sign-in")
	}
	n, err := r.rdb.Keys(context.Background(), DefaultKeyPrefix+"session:*").Result()
	if err != nil || len(n) != 0 {
		t.Errorf("got session keys %v (%v) after a refused sign-in, want none", n, err)
	}
}

func TestIDTokenRefusals(t *testing.T) {
	cases := []struct {
		name  string
		shape func(c map[string]any)
		sign  string
		// now shifts the proxy's clock
		now time.Duration
		// inLog is part of the reason logged
		inLog string
	}{
		{name: "wrong nonce", shape: func(c map[string]any) { c["nonce"] = "n-other" }, inLog: "nonce"},
		{name: "no nonce", shape: func(c map[string]any) { delete(c, "nonce") }, inLog: "nonce"},
		{name: "other audience", shape: func(c map[string]any) { c["aud"] = "another-app" },
			inLog: "audience"},
		{name: "audiences without us", shape: func(c map[string]any) { c["aud"] = []string{"a", "b"} },
			inLog: "audience"},
		{name: "expired", shape: func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
		}, inLog: "expired"},
		{name: "expired by the proxy's clock", now: 2 * time.Hour, inLog: "expired"},
		{name: "other issuer", shape: func(c map[string]any) { c["iss"] = "https://evil.example" },
			inLog: "different provider"},
		{name: "hmac with the client secret", sign: "hs256", inLog: "malformed jwt"},
		{name: "unsigned", sign: "none", inLog: "malformed jwt"},
		{name: "unpublished key", sign: "other-key", inLog: "signature"},
	}
	r := startRedis(t)
	idp := newFakeIdP(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.rdb.FlushAll(context.Background())
			idp.set(func(f *fakeIdP) { f.shape, f.sign = tc.shape, tc.sign })
			t.Cleanup(func() { idp.set(func(f *fakeIdP) { f.shape, f.sign = nil, "" }) })
			p := newProxy(t, false).start(t, r, func(c *Config) {
				idp.config(c)
				if tc.now != 0 {
					c.Now = func() time.Time { return time.Now().Add(tc.now) }
				}
			})
			b := newBrowser(t, nil)
			resp, body := signInFake(t, b, p)
			assertRefused(t, r, b, p, resp, body, http.StatusBadRequest, "invalid_id_token")
			if !strings.Contains(p.log.String(), tc.inLog) {
				t.Errorf("got log without %q:\n%s", tc.inLog, p.log)
			}
		})
	}

	// and the same provider, unshaped, signs people in
	t.Run("control", func(t *testing.T) {
		p := newProxy(t, false).start(t, r, idp.config)
		b := newBrowser(t, nil)
		resp, body := signInFake(t, b, p)
		if w := decodeWhoami(t, resp, body); w.User != "alice" || w.Org != "acme" {
			t.Errorf("got %+v, want alice of acme", w)
		}
	})
}

func TestClaimRefusals(t *testing.T) {
	cases := []struct {
		name     string
		cfg      func(c *Config)
		shape    func(c map[string]any)
		wantCode string
		wantOrg  string
		admin    bool
	}{
		{name: "org claim", wantOrg: "acme"},
		{name: "org claim missing", shape: func(c map[string]any) { delete(c, "org") },
			wantCode: "wrong_org"},
		{name: "org not allowed", cfg: func(c *Config) { c.Orgs = []string{"initech"} },
			wantCode: "wrong_org"},
		{name: "org allowed, any case", cfg: func(c *Config) { c.Orgs = []string{"ACME"} },
			wantOrg: "acme"},
		{name: "org unusable as a name", shape: func(c map[string]any) { c["org"] = "acme:{x}" },
			wantCode: "wrong_org"},
		{name: "custom org claim", cfg: func(c *Config) { c.OrgClaim = "tenant" },
			shape: func(c map[string]any) { c["tenant"] = "globex" }, wantOrg: "globex"},
		{name: "username missing", shape: func(c map[string]any) { delete(c, "preferred_username") },
			wantCode: "invalid_username"},
		{name: "username with a slash",
			shape:    func(c map[string]any) { c["preferred_username"] = "../x" },
			wantCode: "invalid_username"},
		{name: "username not a string", shape: func(c map[string]any) { c["preferred_username"] = 42 },
			wantCode: "invalid_username"},
		{name: "custom username claim", cfg: func(c *Config) { c.UsernameClaim = "email" },
			wantOrg: "acme"},
		{name: "email domain", cfg: func(c *Config) { c.EmailDomains = []string{"acme.test"} },
			wantOrg: "acme.test"},
		{name: "email domain, verified as a string",
			cfg:   func(c *Config) { c.EmailDomains = []string{"acme.test"} },
			shape: func(c map[string]any) { c["email_verified"] = "true" }, wantOrg: "acme.test"},
		{name: "email domain unverified",
			cfg:   func(c *Config) { c.EmailDomains = []string{"acme.test"} },
			shape: func(c map[string]any) { c["email_verified"] = false }, wantCode: "wrong_org"},
		{name: "email domain unverified but allowed",
			cfg: func(c *Config) {
				c.EmailDomains = []string{"acme.test"}
				c.AllowUnverifiedEmail = true
			},
			shape: func(c map[string]any) { delete(c, "email_verified") }, wantOrg: "acme.test"},
		{name: "email of another domain",
			cfg:      func(c *Config) { c.EmailDomains = []string{"initech.test"} },
			wantCode: "wrong_org"},
		{name: "admin group", cfg: func(c *Config) { c.AdminGroup = "staff" },
			wantOrg: "acme", admin: true},
		{name: "admin group as a string", cfg: func(c *Config) { c.AdminGroup = "admins" },
			shape: func(c map[string]any) { c["groups"] = "admins" }, wantOrg: "acme", admin: true},
		{name: "not in the admin group", cfg: func(c *Config) { c.AdminGroup = "admins" },
			wantOrg: "acme"},
		{name: "custom groups claim",
			cfg: func(c *Config) {
				c.AdminGroup = "admins"
				c.GroupsClaim = "roles"
			},
			shape: func(c map[string]any) { c["roles"] = []string{"admins"} }, wantOrg: "acme", admin: true},
	}
	r := startRedis(t)
	idp := newFakeIdP(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r.rdb.FlushAll(context.Background())
			idp.set(func(f *fakeIdP) { f.shape = tc.shape })
			t.Cleanup(func() { idp.set(func(f *fakeIdP) { f.shape = nil }) })
			p := newProxy(t, false).start(t, r, func(c *Config) {
				idp.config(c)
				if tc.cfg != nil {
					tc.cfg(c)
				}
			})
			b := newBrowser(t, nil)
			resp, body := signInFake(t, b, p)
			if tc.wantCode != "" {
				assertRefused(t, r, b, p, resp, body, http.StatusForbidden, tc.wantCode)
				return
			}
			w := decodeWhoami(t, resp, body)
			if w.Org != tc.wantOrg || w.Admin != tc.admin {
				t.Errorf("got org %q admin %v, want %q %v", w.Org, w.Admin, tc.wantOrg, tc.admin)
			}
			if tc.name == "custom username claim" && w.User != "alice@acme.test" {
				t.Errorf("got user %q, want alice@acme.test", w.User)
			}
		})
	}
}

func TestRefreshUnreachableThenExpired(t *testing.T) {
	r := startRedis(t)
	idp := newFakeIdP(t)
	clk := newClock()
	p := newProxy(t, false).start(t, r, func(c *Config) {
		idp.config(c)
		c.Now = clk.Now
	})
	b := newBrowser(t, nil)
	resp, body := signInFake(t, b, p)
	if w := decodeWhoami(t, resp, body); w.User != "alice" {
		t.Fatalf("got user %q, want alice", w.User)
	}
	idp.set(func(f *fakeIdP) { f.refresh = "drop" })
	refreshes := func() int {
		n := 0
		idp.set(func(f *fakeIdP) { n = f.refreshes })
		return n
	}

	steps := []struct {
		name      string
		advance   time.Duration
		want      int
		refreshes int
	}{
		// the access token (5 minutes) is due for refresh; the provider
		// cannot be reached, but the token is still valid: carry on
		{"due, unreachable", 4*time.Minute + 30*time.Second, http.StatusOK, 1},
		{"waiting before retrying", 10 * time.Second, http.StatusOK, 1},
		// past the token's expiry, still unreachable: signed out
		{"expired, unreachable", time.Minute, http.StatusUnauthorized, 2},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		resp, _ := b.api(p.url("/x"))
		if resp.StatusCode != s.want || refreshes() != s.refreshes {
			t.Fatalf("%s: got status %d after %d refreshes, want %d after %d",
				s.name, resp.StatusCode, refreshes(), s.want, s.refreshes)
		}
	}
}

func TestRefreshRefusedEndsSession(t *testing.T) {
	r := startRedis(t)
	idp := newFakeIdP(t)
	clk := newClock()
	p := newProxy(t, false).start(t, r, func(c *Config) {
		idp.config(c)
		c.Now = clk.Now
	})
	b := newBrowser(t, nil)
	signInFake(t, b, p)
	cookie := b.cookie(p.url("/"), "studio_session")

	idp.set(func(f *fakeIdP) { f.refresh = "refuse" })
	clk.Advance(4*time.Minute + 30*time.Second)
	resp, body := b.api(p.url("/x"))
	if resp.StatusCode != http.StatusUnauthorized || jsonErrorCode(t, body) != "signed_out" {
		t.Fatalf("got status %d %s, want 401 signed_out", resp.StatusCode, body)
	}
	if sessionExists(t, r, cookie) {
		t.Error("got the session in Redis after a refused refresh")
	}
}

func TestRefreshChecksClaimsAgain(t *testing.T) {
	r := startRedis(t)
	idp := newFakeIdP(t)
	clk := newClock()
	dir := r.directory(t)
	p := newProxy(t, false).start(t, r, func(c *Config) {
		idp.config(c)
		c.Now = clk.Now
		c.Orgs = []string{"acme"}
		c.AdminGroup = "admins"
		c.Directory = dir
	})
	b := newBrowser(t, nil)
	signInFake(t, b, p)

	// made admin at the provider: recorded at the next refresh
	idp.set(func(f *fakeIdP) { f.claims["groups"] = []string{"admins"} })
	clk.Advance(4*time.Minute + 30*time.Second)
	resp, body := b.api(p.url("/x"))
	if w := decodeWhoami(t, resp, body); !w.Admin {
		t.Error("got admin false after the provider made alice admin, want true")
	}
	if u := directoryUser(t, dir, "alice"); !u.Admin {
		t.Error("got directory admin false, want true")
	}

	// moved to another organization: the next refresh ends the session
	idp.set(func(f *fakeIdP) { f.claims["org"] = "initech" })
	clk.Advance(5 * time.Minute)
	if resp, _ := b.api(p.url("/x")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("got status %d after leaving the organization, want 401", resp.StatusCode)
	}
}

func TestLogoutRules(t *testing.T) {
	r := startRedis(t)
	idp := newFakeIdP(t)
	idp.set(func(f *fakeIdP) { f.noEndSession = true })
	p := newProxy(t, false).start(t, r, idp.config)

	cases := []struct {
		name       string
		origin     string
		fetchSite  string
		wantStatus int
		wantEnded  bool
	}{
		{name: "other origin", origin: "https://evil.example", wantStatus: http.StatusForbidden},
		{name: "null origin", origin: "null", wantStatus: http.StatusForbidden},
		{name: "cross-site fetch", fetchSite: "cross-site", wantStatus: http.StatusForbidden},
		{name: "no origin at all", wantStatus: http.StatusForbidden},
		{name: "same origin by header", fetchSite: "same-origin", wantStatus: http.StatusSeeOther,
			wantEnded: true},
		{name: "same origin", origin: "", wantStatus: http.StatusSeeOther, wantEnded: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, nil)
			signInFake(t, b, p)
			cookie := b.cookie(p.url("/"), "studio_session")

			req, _ := http.NewRequest(http.MethodPost, p.url("/studio/logout"), nil)
			switch {
			case tc.origin != "":
				req.Header.Set("Origin", tc.origin)
			case tc.name == "same origin":
				req.Header.Set("Origin", p.srv.URL)
			}
			if tc.fetchSite != "" {
				req.Header.Set("Sec-Fetch-Site", tc.fetchSite)
			}
			resp, _ := b.do(b.noFollow(), req)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("got status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := !sessionExists(t, r, cookie); got != tc.wantEnded {
				t.Errorf("got session ended %v, want %v", got, tc.wantEnded)
			}
			if tc.wantEnded {
				// no end-session endpoint: straight to the signed-out page
				if loc := resp.Header.Get("Location"); loc != "/studio/signed-out" {
					t.Errorf("got Location %q, want /studio/signed-out", loc)
				}
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	r := startRedis(t)
	idp := newFakeIdP(t)
	cases := []struct {
		name string
		cfg  func(c *Config)
		want string
	}{
		{"no issuer", func(c *Config) { c.Issuer = "" }, "issuer is required"},
		{"no client", func(c *Config) { c.ClientID = "" }, "client id is required"},
		{"no external URL", func(c *Config) { c.ExternalURL = "" }, "external URL"},
		{"external URL with a path", func(c *Config) { c.ExternalURL = "https://x.example/a" },
			"scheme and host only"},
		{"prefix without slashes", func(c *Config) { c.PathPrefix = "studio" }, "path prefix"},
		{"hmac algorithm", func(c *Config) { c.SigningAlgs = []string{"HS256"} }, "not accepted"},
		{"none algorithm", func(c *Config) { c.SigningAlgs = []string{"none"} }, "not accepted"},
		{"unreachable issuer", func(c *Config) { c.Issuer = "http://127.0.0.1:1" },
			"discovering OpenID provider http://127.0.0.1:1"},
		{"issuer mismatch", func(c *Config) { c.Issuer = idp.srv.URL + "/" },
			"discovering OpenID provider"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{ExternalURL: "http://127.0.0.1:8080"}
			idp.config(&c)
			tc.cfg(&c)
			_, err := New(context.Background(), r.rdb, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
