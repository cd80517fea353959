package proxy

import (
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestCache(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	newC := func() *cache { return newCache(100, time.Minute, clock.now) }

	t.Run("hit", func(t *testing.T) {
		c := newC()
		c.putDecision(c.generation(), "bob", "alice", authz.Grantee, time.Time{})
		if e, ok := c.decision("bob", "alice"); !ok || e.d != authz.Grantee {
			t.Errorf("got %v %v, want a grantee hit", e.d, ok)
		}
	})
	t.Run("fill that raced an invalidation is dropped", func(t *testing.T) {
		c := newC()
		gen := c.generation()
		c.dropPair("bob", "alice") // a revoke lands while the fill asks Redis
		c.putDecision(gen, "bob", "alice", authz.Grantee, time.Time{})
		if _, ok := c.decision("bob", "alice"); ok {
			t.Error("stale fill stored")
		}
		c.putServer(gen, serverEntry{s: backend.Server{ID: "alice"}})
		if _, ok := c.server("alice"); ok {
			t.Error("stale server fill stored")
		}
	})
	t.Run("expires at the grant's end", func(t *testing.T) {
		c := newC()
		c.putDecision(c.generation(), "bob", "alice", authz.Grantee, clock.t.Add(10*time.Second))
		clock.t = clock.t.Add(9 * time.Second)
		if _, ok := c.decision("bob", "alice"); !ok {
			t.Error("dropped before the grant's end")
		}
		clock.t = clock.t.Add(time.Second)
		if _, ok := c.decision("bob", "alice"); ok {
			t.Error("kept at the grant's end")
		}
	})
	t.Run("expires after the TTL", func(t *testing.T) {
		c := newC()
		c.putDecision(c.generation(), "bob", "alice", authz.Owner, time.Time{})
		clock.t = clock.t.Add(time.Minute)
		if _, ok := c.decision("bob", "alice"); ok {
			t.Error("kept after the TTL")
		}
	})
	t.Run("drops", func(t *testing.T) {
		c := newC()
		fill := func() {
			g := c.generation()
			for _, p := range []pair{{"bob", "alice"}, {"bob", "carol"}, {"dave", "alice"}} {
				c.putDecision(g, p.user, p.server, authz.Grantee, time.Time{})
			}
			c.putServer(g, serverEntry{s: backend.Server{ID: "alice"}})
		}
		has := func(u, s string) bool { _, ok := c.decision(u, s); return ok }

		fill()
		c.dropServer("alice")
		if has("bob", "alice") || has("dave", "alice") || !has("bob", "carol") {
			t.Error("dropServer: wrong decisions dropped")
		}
		if _, ok := c.server("alice"); ok {
			t.Error("dropServer kept the server")
		}
		fill()
		c.dropUser("bob")
		if has("bob", "alice") || has("bob", "carol") || !has("dave", "alice") {
			t.Error("dropUser: wrong decisions dropped")
		}
		fill()
		c.flush()
		if d, s := c.size(); d != 0 || s != 0 {
			t.Errorf("flush left %d decisions, %d servers", d, s)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		c := newCache(16, time.Minute, clock.now)
		for i := range 1000 {
			c.putDecision(c.generation(), "u", string(rune('a'+i%26))+string(rune('a'+i/26)),
				authz.Grantee, time.Time{})
		}
		if d, _ := c.size(); d > 16 {
			t.Errorf("got %d decisions, want at most 16", d)
		}
	})
}
