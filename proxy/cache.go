package proxy

import (
	"net/url"
	"sync"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
)

// pair names a (user, server) decision.
type pair struct{ user, server string }

type decisionEntry struct {
	d authz.Decision
	// until is when the decision ends by itself (a grant's expiry);
	// zero for never.
	until   time.Time
	expires time.Time
}

type serverEntry struct {
	s backend.Server
	// addr is s.Addr parsed, so that forwarding does not parse it on
	// every request.
	addr    *url.URL
	expires time.Time
}

// cache holds decisions and server records of one replica. It is only
// trusted while the events subscription is up; every event that changes
// a decision or a server drops the entries it concerns.
//
// A fill that raced an invalidation must not store what it read before
// the change: each fill notes the generation before asking Redis and
// stores only if no invalidation happened since.
type cache struct {
	mu        sync.RWMutex
	gen       uint64
	decisions map[pair]decisionEntry
	servers   map[string]serverEntry
	max       int
	ttl       time.Duration
	now       func() time.Time
}

func newCache(max int, ttl time.Duration, now func() time.Time) *cache {
	return &cache{
		decisions: make(map[pair]decisionEntry),
		servers:   make(map[string]serverEntry),
		max:       max,
		ttl:       ttl,
		now:       now,
	}
}

// generation returns the current generation, to pass to a later put.
func (c *cache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

func (c *cache) decision(user, server string) (decisionEntry, bool) {
	c.mu.RLock()
	e, ok := c.decisions[pair{user, server}]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return decisionEntry{}, false
	}
	return e, true
}

// putDecision stores a decision read at generation gen. It expires at
// the decision's own end or after the cache's TTL, whichever is first.
func (c *cache) putDecision(gen uint64, user, server string, d authz.Decision, until time.Time) {
	exp := c.now().Add(c.ttl)
	if !until.IsZero() && until.Before(exp) {
		exp = until
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.decisions) >= c.max {
		evict(c.decisions, c.max/8+1)
	}
	c.decisions[pair{user, server}] = decisionEntry{d: d, until: until, expires: exp}
}

func (c *cache) server(id string) (serverEntry, bool) {
	c.mu.RLock()
	e, ok := c.servers[id]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return serverEntry{}, false
	}
	return e, true
}

func (c *cache) putServer(gen uint64, e serverEntry) {
	e.expires = c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.servers) >= c.max {
		evict(c.servers, c.max/8+1)
	}
	c.servers[e.s.ID] = e
}

// dropPair forgets the decision of one (user, server).
func (c *cache) dropPair(user, server string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.decisions, pair{user, server})
}

// dropServer forgets a server record and every decision about it.
func (c *cache) dropServer(server string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.servers, server)
	for k := range c.decisions {
		if k.server == server {
			delete(c.decisions, k)
		}
	}
}

// dropUser forgets every decision about a user.
func (c *cache) dropUser(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k := range c.decisions {
		if k.user == user {
			delete(c.decisions, k)
		}
	}
}

// flush forgets everything.
func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.decisions)
	clear(c.servers)
}

// size returns the number of decisions and servers held.
func (c *cache) size() (decisions, servers int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.decisions), len(c.servers)
}

// evict deletes n entries of m, whichever the map yields first: a cache
// this simple only needs to stay bounded, and entries refill from Redis.
func evict[K comparable, V any](m map[K]V, n int) {
	for k := range m {
		if n <= 0 {
			return
		}
		delete(m, k)
		n--
	}
}
