package session

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// loginLimiter bounds how many sign-ins one client may start per minute
// in this replica. Each started sign-in stores a login state in Redis for
// LoginTimeout; without a bound anyone could fill Redis with them.
type loginLimiter struct {
	perMinute int
	now       func() time.Time

	mu      sync.Mutex
	windows map[string]window
}

type window struct {
	start time.Time
	count int
}

// maxClients bounds the limiter's memory: when more clients than this are
// tracked, windows that ended are dropped, and if none had, all are.
const maxClients = 100_000

func newLoginLimiter(perMinute int, now func() time.Time) *loginLimiter {
	return &loginLimiter{perMinute: perMinute, now: now, windows: map[string]window{}}
}

// allow reports whether client may start one more sign-in now, and counts
// it when it may.
func (l *loginLimiter) allow(client string) bool {
	if l.perMinute < 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()

	w, ok := l.windows[client]
	if !ok || now.Sub(w.start) >= time.Minute {
		if !ok && len(l.windows) >= maxClients {
			l.prune(now)
		}
		w = window{start: now}
	}
	if w.count >= l.perMinute {
		return false
	}
	w.count++
	l.windows[client] = w
	return true
}

func (l *loginLimiter) prune(now time.Time) {
	for k, w := range l.windows {
		if now.Sub(w.start) >= time.Minute {
			delete(l.windows, k)
		}
	}
	if len(l.windows) >= maxClients {
		clear(l.windows)
	}
}

// peerIP is the address of the peer of r, the default Config.ClientIP.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
