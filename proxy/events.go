package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// recheckTimeout bounds one re-decision after an event.
const recheckTimeout = 5 * time.Second

// onEvent drops what an event makes stale and cuts the connections it
// ends. It runs on the subscriber's goroutine and must not block: every
// Redis call goes to a goroutine of its own.
func (p *Proxy) onEvent(ev events.Event) {
	p.metrics.events.WithLabelValues(string(ev.Kind)).Inc()
	user, _ := ident.Username(ev.User)
	server, _ := ident.ServerID(ev.Server)

	switch ev.Kind {
	case events.Grant:
		if user != "" && server != "" {
			p.cache.dropPair(user, server)
		}
	case events.Change, events.Revoke:
		// a change may keep access (a grantee who only lost start/stop),
		// so decide again rather than cut on the event alone
		if user != "" && server != "" {
			p.cache.dropPair(user, server)
			go p.recheckPair(authz.User{Name: user}, server)
		}
	case events.UserChanged:
		if user != "" {
			p.cache.dropUser(user)
			go p.recheckWhere(func(t *tracked) bool { return t.user.Name == user })
		}
	case events.ServerState:
		if server == "" {
			return
		}
		p.cache.dropServer(server)
		p.waiters.wake(server)
		if ev.State != string(backend.Running) {
			p.cut(func(t *tracked) bool { return t.server == server },
				CloseServerStopped, "server "+ev.State, "server_stopped")
		}
	case events.Logout:
		if ev.Session != "" {
			p.cut(func(t *tracked) bool { return t.session == ev.Session },
				CloseSignedOut, "signed out", "signed_out")
		}
	case events.SessionsEnded:
		if user != "" {
			p.cut(func(t *tracked) bool { return t.user.Name == user },
				CloseSignedOut, "sessions ended by an admin", "signed_out")
		}
	}
}

// onSubscription flushes the cache whenever the subscription comes or
// goes: while it was down, events may have been missed. On coming back,
// every open connection is decided again for the same reason.
func (p *Proxy) onSubscription(subscribed bool) {
	p.cache.flush()
	if subscribed {
		go p.recheckWhere(func(*tracked) bool { return true })
	}
}

// cut ends the matching connections and counts them.
func (p *Proxy) cut(match func(*tracked) bool, code int, reason, label string) {
	for _, t := range p.conns.where(match) {
		t.cut(code, reason)
		kind := "http"
		if t.ws {
			kind = "websocket"
		}
		p.metrics.cuts.WithLabelValues(label, kind).Inc()
		p.log.Info("connection cut", "kind", kind, "user", t.user.Name, "server", t.server,
			"reason", label)
	}
}

// recheckPair decides one (user, server) again from Redis and cuts its
// connections when access ended.
func (p *Proxy) recheckPair(user authz.User, server string) {
	ts := p.conns.where(func(t *tracked) bool {
		return t.user.Name == user.Name && t.server == server
	})
	if len(ts) == 0 {
		return
	}
	p.recheck(ts[0].user, server, ts)
}

// recheckWhere decides again every (user, server) among the matching
// connections.
func (p *Proxy) recheckWhere(match func(*tracked) bool) {
	groups := map[pair][]*tracked{}
	for _, t := range p.conns.where(match) {
		k := pair{t.user.Name, t.server}
		groups[k] = append(groups[k], t)
	}
	for _, ts := range groups {
		p.recheck(ts[0].user, ts[0].server, ts)
	}
}

// recheck decides (user, server) again with the directory's copy of the
// user (an admin flag or organization may have changed since sign-in)
// and cuts ts when access ended.
func (p *Proxy) recheck(user authz.User, server string, ts []*tracked) {
	ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
	defer cancel()
	d, until := authz.None, time.Time{}
	fresh, err := p.cfg.Authz.User(ctx, user.Name)
	if errors.Is(err, authz.ErrUnknownUser) {
		err = nil // no longer in the directory: no access
	} else if err == nil {
		d, until, err = p.decideFresh(ctx, fresh, server)
	} else {
		p.metrics.redisError("user")
	}

	set := map[*tracked]bool{}
	for _, t := range ts {
		set[t] = true
	}
	match := func(t *tracked) bool { return set[t] }
	switch {
	case err != nil:
		// deny rather than guess
		p.log.Warn("re-deciding access failed", "user", user.Name, "server", server, "err", err)
		p.cut(match, CloseCannotCheck, "cannot check access right now", "cannot_check")
	case !d.CanUse():
		p.cut(match, CloseRevoked, "access to this server was removed", "revoked")
	default:
		for _, t := range ts {
			p.expireAt(t, until)
		}
	}
}
