package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// serveBackend decides a signed-in request to a server and forwards it:
// which server, may they, is it up.
func (p *Proxy) serveBackend(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	who, ok := signedIn(ctx)
	if !ok {
		// Require let a request through without a session: never forward
		p.fail(w, r, problem{status: http.StatusUnauthorized, code: "signed_out",
			title: "Signed out", message: "Sign in to use this server."})
		return
	}
	rt, _ := ctx.Value(routeKey{}).(route)
	ws := isWebsocket(r)

	// which server: any path but /servers/{id}/ goes to the active one, a
	// browser by redirect so that its address names the server
	if rt.kind == routeActive {
		id := p.activeServer(r, who.user.Name)
		if !ws && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			p.redirect(w, r, basePath(id)+rt.rawRest)
			return
		}
		rt = rt.pin(id)
	}
	if rt.bare && !ws && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		p.redirect(w, r, basePath(rt.server))
		return
	}

	// a replica shutting down takes no new websockets: they would be
	// closed again at once
	if ws && p.draining.Load() {
		p.fail(w, r, problem{status: http.StatusServiceUnavailable, code: "shutting_down",
			title: "Restarting", retryAfter: 1,
			message: "This proxy replica is restarting. Connect again."})
		return
	}

	// cross-site requests never reach a backend
	if ws && !p.origins.checkWebsocket(r) {
		p.fail(w, r, problem{status: http.StatusForbidden, code: "origin_not_allowed",
			title: "Refused", message: "Websockets are only accepted from pages of this site."})
		return
	}
	if !ws && !p.origins.checkBackendWrite(r) {
		p.fail(w, r, problem{status: http.StatusForbidden, code: "cross_site",
			title: "Refused", message: "This request came from another site and was refused."})
		return
	}

	// track before deciding: a revoke that lands after the decision
	// then finds this connection and cuts it
	t := &tracked{user: who.user, server: rt.server, session: who.session, ws: ws}
	parent := ctx
	if ws {
		// a websocket outlives nothing but the proxy's own cut
		parent = context.WithoutCancel(ctx)
	}
	tctx, cancel := context.WithCancelCause(parent)
	t.cancel = cancel
	if !ws && r.ContentLength != 0 {
		// a body still streaming in keeps the transport reading it, and
		// the request in flight, whatever its context says: a cut also
		// ends that read
		rc := http.NewResponseController(w)
		t.cancel = func(cause error) {
			cancel(cause)
			if cause != nil {
				rc.SetReadDeadline(time.Now())
			}
		}
	}
	p.conns.add(t)
	defer p.conns.remove(t)
	defer cancel(nil)

	// may they
	d, until, err := p.decide(ctx, who.user, rt.server)
	if err != nil {
		p.log.Warn("deciding access failed", "user", who.user.Name, "server", rt.server, "err", err)
		p.fail(w, r, cannotCheck)
		return
	}
	if !d.CanUse() {
		p.clearActiveIf(w, r, rt.server)
		p.fail(w, r, problem{status: http.StatusForbidden, code: "no_access", title: "No access",
			message: fmt.Sprintf("You do not have access to server %q. Ask its owner to share it "+
				"with you, or switch to another server.", rt.server)})
		return
	}
	p.expireAt(t, until)

	// is it up
	e, err := p.server(ctx, rt.server)
	if err == nil {
		e, err = p.awaitStart(ctx, rt.server, e)
	}
	switch {
	case errors.Is(err, backend.ErrNotFound):
		p.fail(w, r, problem{status: http.StatusNotFound, code: "no_server", title: "No such server",
			message: fmt.Sprintf("There is no server %q.", rt.server)})
		return
	case ctx.Err() != nil:
		return
	case err != nil:
		p.log.Warn("loading server failed", "server", rt.server, "err", err)
		p.fail(w, r, cannotCheck)
		return
	}
	if e.s.State != backend.Running || e.addr == nil {
		p.serverDown(w, r, who.user, e.s, d)
		return
	}

	if ws {
		p.serveWebsocket(tctx, w, r, t, rt, e)
		return
	}
	p.forward(w, r.WithContext(tctx), who.user.Name, rt, e)
}

// cannotCheck answers when Redis cannot say who may do what: deny.
var cannotCheck = problem{
	status:     http.StatusServiceUnavailable,
	code:       "cannot_check_access",
	title:      "Cannot check access right now",
	message:    "The proxy cannot check access right now. Try again in a moment.",
	retryAfter: 5,
}

// redirect sends a browser to loc, keeping the query. The answer depends
// on a cookie, so it is never cached.
func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request, loc string) {
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header().Set("Cache-Control", "no-store")
	p.metrics.outcome("redirected")
	http.Redirect(w, r, loc, http.StatusFound)
}

// decide returns what user may do with server, from the replica's cache
// while the events subscription is up, else from Redis. The user's own
// default server is created on first use.
func (p *Proxy) decide(
	ctx context.Context,
	user authz.User,
	server string,
) (authz.Decision, time.Time, error) {
	start := time.Now()
	subscribed := p.cfg.Events.Subscribed()
	if subscribed {
		if e, ok := p.cache.decision(user.Name, server); ok {
			p.metrics.decisionCache.Observe(time.Since(start).Seconds())
			return e.d, e.until, nil
		}
	}

	gen := p.cache.generation()
	d, until, err := p.decideFresh(ctx, user, server)
	if err != nil {
		return authz.None, time.Time{}, err
	}
	p.metrics.decisionRedis.Observe(time.Since(start).Seconds())
	if subscribed {
		p.cache.putDecision(gen, user.Name, server, d, until)
	}
	return d, until, nil
}

// decideFresh asks Redis, bypassing the cache. A server that does not
// exist decides None (so that a refusal does not tell whether it
// exists), except the user's own default server, which is created on
// first use.
func (p *Proxy) decideFresh(
	ctx context.Context,
	user authz.User,
	server string,
) (authz.Decision, time.Time, error) {
	d, until, err := p.cfg.Authz.DecideUntil(ctx, user, server)
	if errors.Is(err, authz.ErrNoServer) && server == ident.DefaultServerID(user.Name) {
		if _, err := p.cfg.Registry.EnsureDefault(ctx, user.Name); err != nil {
			p.metrics.redisError("ensure_default")
			return authz.None, time.Time{}, fmt.Errorf("creating default server: %w", err)
		}
		d, until, err = p.cfg.Authz.DecideUntil(ctx, user, server)
	}
	switch {
	case errors.Is(err, authz.ErrNoServer), errors.Is(err, authz.ErrInvalidInput):
		return authz.None, time.Time{}, nil
	case err != nil:
		p.metrics.redisError("decide")
		return authz.None, time.Time{}, fmt.Errorf("deciding: %w", err)
	}
	return d, until, nil
}

// server returns a server record, from the cache while subscribed.
func (p *Proxy) server(ctx context.Context, id string) (serverEntry, error) {
	subscribed := p.cfg.Events.Subscribed()
	if subscribed {
		if e, ok := p.cache.server(id); ok {
			return e, nil
		}
	}

	gen := p.cache.generation()
	s, err := p.cfg.Registry.Get(ctx, id)
	if err != nil {
		if !errors.Is(err, backend.ErrNotFound) {
			p.metrics.redisError("server")
		}
		return serverEntry{}, fmt.Errorf("loading server: %w", err)
	}
	e := serverEntry{s: s}
	if s.State == backend.Running {
		u, err := url.Parse(s.Addr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.log.Error("running server has a bad address", "server", id)
		} else {
			e.addr = u
		}
	}
	if subscribed {
		p.cache.putServer(gen, e)
	}
	return e, nil
}

// startPoll is how often a request waiting for a starting server looks
// again when no event wakes it (events missed while not subscribed).
const startPoll = 500 * time.Millisecond

// awaitStart waits up to StartWait for a starting server to leave the
// starting state, woken by its state events.
func (p *Proxy) awaitStart(ctx context.Context, id string, e serverEntry) (serverEntry, error) {
	if e.s.State != backend.Starting || p.cfg.StartWait <= 0 {
		return e, nil
	}
	deadline := time.NewTimer(p.cfg.StartWait)
	defer deadline.Stop()
	for e.s.State == backend.Starting {
		changed := p.waiters.next(id)
		// the state may have changed before we listened
		e2, err := p.server(ctx, id)
		if err != nil {
			return e, err
		}
		if e = e2; e.s.State != backend.Starting {
			break
		}
		select {
		case <-changed:
		case <-time.After(startPoll):
		case <-deadline.C:
			return e, nil
		case <-ctx.Done():
			return e, ctx.Err()
		}
	}
	return e, nil
}

// serverDown answers a request to a server that is not running: a page
// with a Start button for those who may start it, 503 JSON for the rest.
func (p *Proxy) serverDown(
	w http.ResponseWriter,
	r *http.Request,
	user authz.User,
	s backend.Server,
	d authz.Decision,
) {
	name := displayName(s, user.Name)
	pr := problem{status: http.StatusServiceUnavailable}
	switch s.State {
	case backend.Starting:
		pr.code, pr.title, pr.retryAfter = "server_starting", name+" is starting", 2
		pr.message = fmt.Sprintf("Server %q is starting. This page reloads by itself.", s.ID)
	case backend.Stopping:
		pr.code, pr.title, pr.retryAfter = "server_stopping", name+" is stopping", 2
		pr.message = fmt.Sprintf("Server %q is stopping.", s.ID)
	case backend.Failed:
		pr.code, pr.title = "server_failed", name+" failed"
		pr.message = fmt.Sprintf("Server %q stopped with an error.", s.ID)
	default:
		pr.code, pr.title = "server_stopped", name+" is stopped"
		pr.message = fmt.Sprintf("Server %q is not running.", s.ID)
	}
	if d.CanStartStop() && (s.State == backend.Stopped || s.State == backend.Failed) {
		pr.message += " You can start it."
	}
	if !wantsHTML(r) {
		p.fail(w, r, pr)
		return
	}

	p.metrics.outcome(pr.code)
	if pr.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(pr.retryAfter))
	}
	stopped := s.State == backend.Stopped || s.State == backend.Failed
	data := pageData{
		Title:      pr.title,
		Message:    pr.message,
		ServerName: name,
		Reason:     s.Reason,
		Stopped:    stopped,
		CanStart:   stopped && d.CanStartStop(),
		StartURL:   p.prefix + "api/servers/" + s.ID + "/start",
	}
	if !stopped {
		data.Refresh = 2
	}
	p.page(w, pr.status, "server.html", data)
}

// displayName is how a server is called to a user: a colleague's default
// server is "alice's server", not "My Server".
func displayName(s backend.Server, viewer string) string {
	if s.Name == "" || (s.Name == backend.DefaultName && s.Owner != viewer) {
		return s.Owner + "'s server"
	}
	return s.Name
}

// expireAt re-decides t when its decision ends by itself.
func (p *Proxy) expireAt(t *tracked, until time.Time) {
	if until.IsZero() {
		return
	}
	wait := until.Sub(p.now())
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.timer = time.AfterFunc(max(wait, 0), func() { p.recheckPair(t.user, t.server) })
}

// waiters wakes requests that wait for a server's state to change.
type waiters struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func newWaiters() *waiters { return &waiters{ch: make(map[string]chan struct{})} }

// next returns a channel closed at the next state event of server.
func (w *waiters) next(server string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.ch[server]
	if !ok {
		c = make(chan struct{})
		w.ch[server] = c
	}
	return c
}

// wake closes the channel of server, if anyone waits.
func (w *waiters) wake(server string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.ch[server]; ok {
		close(c)
		delete(w.ch, server)
	}
}
