package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// lifecycleTimeout bounds a start or stop call. It does not end with the
// client's request: a browser that reloads must not leave a server half
// started.
const lifecycleTimeout = 5 * time.Minute

// ownRoutes serves the reserved prefix: sign-in, health, start and stop,
// the active server, and the Studio for the rest.
func (p *Proxy) ownRoutes() http.Handler {
	pre := p.prefix
	signIn := p.cfg.Sessions.Require
	mux := http.NewServeMux()

	for _, path := range p.cfg.Sessions.Paths() {
		mux.Handle(path, p.cfg.Sessions.Handler())
	}
	mux.HandleFunc("GET "+pre+"healthz", p.serveHealthz)
	mux.HandleFunc("GET "+pre+"readyz", p.serveReadyz)
	mux.Handle("POST "+pre+"api/servers/{id}/start", signIn(p.lifecycleHandler("start")))
	mux.Handle("POST "+pre+"api/servers/{id}/stop", signIn(p.lifecycleHandler("stop")))
	mux.Handle("PUT "+pre+"api/active-server", signIn(http.HandlerFunc(p.serveSetActive)))
	mux.Handle(pre, signIn(http.HandlerFunc(p.serveStudio)))
	mux.HandleFunc(strings.TrimSuffix(pre, "/"), func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, pre, http.StatusFound)
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.metrics.outcome("own")
		mux.ServeHTTP(w, r)
	})
}

// activeKey carries the active server to the Studio handler.
type activeKey struct{}

// ActiveServerFrom returns the server id the signed-in user's
// non-pinned requests go to: the one in their active-server cookie when
// it is valid, else their own default server. It is set in the context
// of requests the proxy hands to Config.Studio; elsewhere it is "".
func ActiveServerFrom(ctx context.Context) string {
	s, _ := ctx.Value(activeKey{}).(string)
	return s
}

func (p *Proxy) serveStudio(w http.ResponseWriter, r *http.Request) {
	if p.cfg.Studio == nil {
		p.fail(w, r, problem{status: http.StatusNotFound, code: "not_found",
			title: "Not found", message: "There is nothing at this address."})
		return
	}
	who, _ := signedIn(r.Context())
	ctx := context.WithValue(r.Context(), activeKey{}, p.activeServer(r, who.user.Name))
	p.cfg.Studio.ServeHTTP(w, r.WithContext(ctx))
}

func (p *Proxy) serveHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// serveReadyz answers 200 when this replica can serve: Redis answers and
// the events subscription is up (without it, every cache is distrusted
// and revokes could be missed). A replica shutting down is not ready.
func (p *Proxy) serveReadyz(w http.ResponseWriter, r *http.Request) {
	notReady := func(code, msg string) {
		writeJSON(w, http.StatusServiceUnavailable,
			errorBody{errorDetail{Code: code, Message: msg}})
	}
	if p.draining.Load() {
		notReady("shutting_down", "This replica is shutting down.")
		return
	}
	if p.cfg.Redis != nil {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := p.cfg.Redis.Ping(ctx).Err(); err != nil {
			p.metrics.redisError("ping")
			notReady("redis_unreachable", "Redis does not answer.")
			return
		}
	}
	if !p.cfg.Events.Subscribed() {
		notReady("events_not_subscribed", "The events channel is not subscribed.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// lifecycleHandler serves POST start or stop of a server: the owner, an
// admin, and grantees with start/stop may; everyone else gets 403 with
// the reason. The answer is the server's new state.
func (p *Proxy) lifecycleHandler(action string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, _ := signedIn(r.Context())
		id, ok := p.apiServerID(w, r, r.PathValue("id"))
		if !ok {
			return
		}
		d, ok := p.apiDecide(w, r, who.user, id)
		if !ok {
			return
		}
		if !d.CanStartStop() {
			p.metrics.lifecycle.WithLabelValues(action, "forbidden").Inc()
			p.fail(w, r, problem{status: http.StatusForbidden, code: "start_stop_not_allowed",
				message: fmt.Sprintf("You may use server %q but not start or stop it. Ask its "+
					"owner to enable Start/Stop for you.", id)})
			return
		}

		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), lifecycleTimeout)
		defer cancel()
		var s backend.Server
		var err error
		if action == "start" {
			s, err = p.cfg.Lifecycle.Start(ctx, id, who.user.Name)
		} else {
			s, err = p.cfg.Lifecycle.Stop(ctx, id, who.user.Name)
		}
		switch {
		case errors.Is(err, backend.ErrBusy):
			p.metrics.lifecycle.WithLabelValues(action, "busy").Inc()
			p.fail(w, r, problem{status: http.StatusConflict, code: "busy", retryAfter: 2,
				message: fmt.Sprintf("Server %q is being started or stopped already. "+
					"Wait a moment and look again.", id)})
			return
		case errors.Is(err, backend.ErrElsewhere):
			p.metrics.lifecycle.WithLabelValues(action, "elsewhere").Inc()
			p.fail(w, r, problem{status: http.StatusConflict, code: "elsewhere", retryAfter: 2,
				message: fmt.Sprintf("Server %q runs beside another proxy replica, which alone "+
					"can %s it right now. Try again in a moment.", id, action)})
			return
		case errors.Is(err, backend.ErrNotFound):
			p.metrics.lifecycle.WithLabelValues(action, "not_found").Inc()
			p.fail(w, r, problem{status: http.StatusNotFound, code: "no_server",
				message: fmt.Sprintf("There is no server %q.", id)})
			return
		case err != nil:
			p.metrics.lifecycle.WithLabelValues(action, "error").Inc()
			p.log.Error("lifecycle call failed", "action", action, "user", who.user.Name,
				"server", id, "err", err)
			msg := fmt.Sprintf("Server %q could not be %s.", id,
				map[string]string{"start": "started", "stop": "stopped"}[action])
			if s.Reason != "" {
				msg += " Reason: " + s.Reason
			} else {
				msg += " Try again; if it keeps failing, the proxy's log has the reason."
			}
			p.fail(w, r, problem{status: http.StatusBadGateway, code: action + "_failed",
				message: msg})
			return
		}
		p.metrics.lifecycle.WithLabelValues(action, "ok").Inc()
		p.log.Info("server "+action+" requested", "user", who.user.Name, "server", id,
			"state", string(s.State))
		writeJSON(w, http.StatusOK, s)
	})
}

// activeRequest is the body of PUT <prefix>api/active-server.
type activeRequest struct {
	Server string `json:"server"`
}

// serveSetActive chooses the server that non-pinned paths go to. A
// server the user may not use is refused with 403 and leaves the cookie
// as it was.
func (p *Proxy) serveSetActive(w http.ResponseWriter, r *http.Request) {
	who, _ := signedIn(r.Context())
	if !p.origins.checkAPIWrite(r) {
		p.fail(w, r, csrfProblem)
		return
	}
	var req activeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		p.fail(w, r, problem{status: http.StatusBadRequest, code: "bad_request",
			message: `Send {"server": "<server id>"}.`})
		return
	}
	id, ok := p.apiServerID(w, r, req.Server)
	if !ok {
		return
	}
	if _, ok := p.apiDecide(w, r, who.user, id); !ok {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     p.activeCookieName(),
		Value:    id,
		Path:     "/",
		MaxAge:   365 * 24 * 3600,
		HttpOnly: true,
		Secure:   p.secure,
		SameSite: http.SameSiteLaxMode,
	})
	writeJSON(w, http.StatusOK, activeRequest{Server: id})
}

var csrfProblem = problem{status: http.StatusForbidden, code: "csrf",
	message: "This call must come from a page of this site, with the " + CSRFHeader +
		" header. It was refused."}

// apiServerID checks the CSRF guard of a state-changing call and
// validates a server id from it.
func (p *Proxy) apiServerID(w http.ResponseWriter, r *http.Request, raw string) (string, bool) {
	if !p.origins.checkAPIWrite(r) {
		p.fail(w, r, csrfProblem)
		return "", false
	}
	id, err := ident.ServerID(raw)
	if err != nil {
		p.fail(w, r, problem{status: http.StatusBadRequest, code: "bad_server_id",
			message: fmt.Sprintf("%q is not a valid server id.", raw)})
		return "", false
	}
	return id, true
}

// apiDecide decides from Redis (state-changing calls are rare and must
// not act on a stale cache) and refuses who may not use the server.
func (p *Proxy) apiDecide(
	w http.ResponseWriter,
	r *http.Request,
	user authz.User,
	id string,
) (authz.Decision, bool) {
	d, _, err := p.decideFresh(r.Context(), user, id)
	if err != nil {
		p.log.Warn("deciding access failed", "user", user.Name, "server", id, "err", err)
		p.fail(w, r, cannotCheck)
		return authz.None, false
	}
	if !d.CanUse() {
		p.fail(w, r, problem{status: http.StatusForbidden, code: "no_access",
			message: fmt.Sprintf("You do not have access to server %q.", id)})
		return authz.None, false
	}
	return d, true
}

// activeCookieName is "__Host-studio_server" on https, else
// "studio_server".
func (p *Proxy) activeCookieName() string {
	if p.secure {
		return "__Host-studio_server"
	}
	return "studio_server"
}

// activeServer returns the server of the active-server cookie, or the
// user's own default server when the cookie is absent or not a valid
// server id (an invalid cookie is ignored, not an error: the user can
// always reach their own server).
func (p *Proxy) activeServer(r *http.Request, user string) string {
	if c, err := r.Cookie(p.activeCookieName()); err == nil {
		if id, err := ident.ServerID(c.Value); err == nil {
			return id
		}
	}
	return ident.DefaultServerID(user)
}

// clearActiveIf clears the active-server cookie when it names server, so
// that a person whose access ended lands on their own server next time.
func (p *Proxy) clearActiveIf(w http.ResponseWriter, r *http.Request, server string) {
	c, err := r.Cookie(p.activeCookieName())
	if err != nil {
		return
	}
	if id, err := ident.ServerID(c.Value); err == nil && id != server {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     p.activeCookieName(),
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   p.secure,
		SameSite: http.SameSiteLaxMode,
	})
}
