package session

import (
	"sync"
	"time"
)

// entry is a session as this replica knows it.
type entry struct {
	sess Session
	rec  record
	// seen is the last use known to this replica.
	seen time.Time
	// touched is when seen was last written to or read from Redis.
	touched time.Time
}

// cache holds the sessions of one replica, bounded. Every invalidation
// bumps gen, and a session read from Redis is only stored when gen did
// not move meanwhile: a read that raced with a logout cannot put the
// ended session back.
type cache struct {
	mu      sync.Mutex
	max     int
	gen     uint64
	entries map[string]*entry
}

func newCache(max int) *cache {
	return &cache{max: max, entries: map[string]*entry{}}
}

func (c *cache) get(hash string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok {
		return entry{}, false
	}
	return *e, true
}

func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores e unless an invalidation happened since gen was read.
func (c *cache) put(hash string, e entry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if _, ok := c.entries[hash]; !ok && len(c.entries) >= c.max {
		// full: drop one entry; map order makes it a random one, which
		// is good enough for a cache that is only a shortcut
		for h := range c.entries {
			delete(c.entries, h)
			break
		}
	}
	c.entries[hash] = &e
}

// set replaces an entry that is still cached; it never adds one.
func (c *cache) set(hash string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// in place: get copies an entry out under the lock, and this runs
	// for every request
	if p, ok := c.entries[hash]; ok {
		*p = e
	}
}

func (c *cache) drop(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.entries, hash)
}

func (c *cache) dropUser(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.entries {
		if e.sess.User.Name == user {
			delete(c.entries, h)
		}
	}
}

func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
