package session

import (
	"net/http"
	"testing"
	"time"
)

func TestLoginLimiter(t *testing.T) {
	c := newClock()
	l := newLoginLimiter(3, c.Now)
	for i := range 3 {
		if !l.allow("192.0.2.1") {
			t.Fatalf("sign-in %d: refused, want allowed", i+1)
		}
	}
	if l.allow("192.0.2.1") {
		t.Fatal("fourth sign-in in a minute: allowed, want refused")
	}
	if !l.allow("192.0.2.2") {
		t.Fatal("another client: refused, want allowed")
	}
	c.Advance(time.Minute)
	if !l.allow("192.0.2.1") {
		t.Fatal("a minute later: refused, want allowed")
	}

	unlimited := newLoginLimiter(-1, c.Now)
	for range 100 {
		if !unlimited.allow("192.0.2.1") {
			t.Fatal("no limit: refused, want allowed")
		}
	}
}

// TestLoginRateLimit starts sign-ins through the real handler: past the
// limit a client gets a clear 429, and no login state is stored for it.
func TestLoginRateLimit(t *testing.T) {
	r := startRedis(t)
	idp := newDevIdP(t)
	p := newProxy(t, false)
	idp.configure(t, nil, p)
	p.start(t, r, func(c *Config) {
		idp.devConfig(c)
		c.LoginRate = 2
	})
	c := newBrowser(t, nil).noFollow()

	for i, want := range []int{http.StatusFound, http.StatusFound, http.StatusTooManyRequests} {
		resp, err := c.Get(p.url("/studio/login?rd=/lab"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("sign-in %d: got %d, want %d", i+1, resp.StatusCode, want)
		}
		if want == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	keys, err := r.rdb.Keys(t.Context(), "studio:login:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("got %d login states in Redis, want 2 (none for the refused one)", len(keys))
	}
}
