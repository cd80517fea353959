package proxy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
)

// Close codes the proxy sends when it ends a websocket itself. The 4000s
// are free for applications (RFC 6455, section 7.4.2); each comes with a
// reason a client can show.
const (
	// CloseRevoked: the user's access to the server ended (revoked,
	// expired, or a permission change that removed it).
	CloseRevoked = 4403
	// CloseSignedOut: the user signed out, or an admin ended their
	// sessions.
	CloseSignedOut = 4401
	// CloseServerStopped: the server stopped or failed.
	CloseServerStopped = 4503
	// CloseCannotCheck: the proxy could not check access (Redis failing)
	// and denies rather than guesses.
	CloseCannotCheck = 4500
	// CloseGoingAway: the proxy is shutting down (RFC 6455's 1001).
	CloseGoingAway = 1001
)

// cutError is the cause of a tracked connection's context when the proxy
// ends it.
type cutError struct {
	code   int
	reason string
}

func (e *cutError) Error() string { return "connection cut: " + e.reason }

// tracked is one connection the proxy may have to cut: an open websocket
// or an in-flight HTTP request to a backend.
type tracked struct {
	user    authz.User
	server  string
	session string
	ws      bool
	cancel  context.CancelCauseFunc

	mu    sync.Mutex
	timer *time.Timer // re-decides when the decision ends by itself
}

// cut ends the connection with a close code and reason.
func (t *tracked) cut(code int, reason string) {
	t.cancel(&cutError{code: code, reason: reason})
}

// cutCause returns why a tracked context ended, or nil when the proxy did
// not end it.
func cutCause(ctx context.Context) *cutError {
	var ce *cutError
	if errors.As(context.Cause(ctx), &ce) {
		return ce
	}
	return nil
}

// conns is the registry of tracked connections of one replica. Lookups
// scan it: events that need one are rare, and the hot path only adds and
// removes.
type conns struct {
	mu  sync.Mutex
	set map[*tracked]struct{}
	// wg counts open websockets, so that shutdown can wait for them.
	wg sync.WaitGroup
}

func newConns() *conns { return &conns{set: make(map[*tracked]struct{})} }

func (c *conns) add(t *tracked) {
	if t.ws {
		c.wg.Add(1)
	}
	c.mu.Lock()
	c.set[t] = struct{}{}
	c.mu.Unlock()
}

func (c *conns) remove(t *tracked) {
	c.mu.Lock()
	delete(c.set, t)
	c.mu.Unlock()
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
	if t.ws {
		c.wg.Done()
	}
}

// where returns the tracked connections for which match is true.
func (c *conns) where(match func(*tracked) bool) []*tracked {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracked
	for t := range c.set {
		if match(t) {
			out = append(out, t)
		}
	}
	return out
}

// cutWhere cuts every connection for which match is true and returns how
// many it cut.
func (c *conns) cutWhere(match func(*tracked) bool, code int, reason string) int {
	ts := c.where(match)
	for _, t := range ts {
		t.cut(code, reason)
	}
	return len(ts)
}

// websockets returns the number of open websockets.
func (c *conns) websockets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for t := range c.set {
		if t.ws {
			n++
		}
	}
	return n
}
