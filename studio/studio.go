package studio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/proxy"
)

// Shares is the share table the API reads and changes: package authz's
// *Store.
type Shares interface {
	User(ctx context.Context, name string) (authz.User, error)
	SearchUsers(ctx context.Context, org, prefix string, limit int) ([]authz.User, error)
	Grant(ctx context.Context, actor authz.User, server, user string,
		startStop bool, expires time.Time) (authz.Grant, error)
	SetStartStop(ctx context.Context, actor authz.User, server, user string,
		startStop bool) (authz.Grant, error)
	Revoke(ctx context.Context, actor authz.User, server, user string) error
	Leave(ctx context.Context, user authz.User, server string) error
	People(ctx context.Context, server string) (authz.User, []authz.Grant, error)
	SharedWith(ctx context.Context, user string) ([]authz.Grant, error)
	DecideUntil(ctx context.Context, user authz.User, server string) (authz.Decision, time.Time, error)
}

// Servers is the server registry the API reads: package backend's
// *Registry.
type Servers interface {
	Get(ctx context.Context, id string) (backend.Server, error)
	List(ctx context.Context, owner string) ([]backend.Server, error)
	EnsureDefault(ctx context.Context, owner string) (backend.Server, error)
}

// Sessions ends login sessions: package session's *Manager.
type Sessions interface {
	EndSessions(ctx context.Context, user, actor string) (int, error)
}

// Config configures the Studio handler.
type Config struct {
	// Prefix is the proxy's reserved path prefix, with leading and
	// trailing slash. Empty means "/studio/".
	Prefix string

	// Authz is the share table. Required.
	Authz Shares

	// Registry is the server registry. Required.
	Registry Servers

	// Sessions ends every login session of a user, for admins (and for
	// users signing themselves out everywhere). Nil answers that endpoint
	// with 404.
	Sessions Sessions

	// ExternalURL is the URL browsers use to reach the proxy, for example
	// "https://studio.example.org": give it the proxy's. Its origin may
	// send state-changing API calls. Empty means the origin of each
	// request as it arrives (scheme from TLS, host from the Host header),
	// which is right only when no TLS-terminating load balancer sits in
	// front.
	ExternalURL string

	// AllowedOrigins are further origins ("https://host[:port]") that may
	// send state-changing API calls: give it the proxy's. Empty allows
	// none besides ExternalURL's.
	AllowedOrigins []string

	// ActiveServer returns the id of the server the user's non-pinned
	// requests go to (the proxy's active-server cookie, or the user's
	// own server), or "" when unknown. Nil means proxy.ActiveServerFrom
	// of the request context, which the proxy sets for the handler it
	// mounts as Config.Studio.
	ActiveServer func(r *http.Request) string

	// BasePath returns the path a server is served under. Nil means
	// "/servers/<id>/".
	BasePath func(id string) string

	// Log receives the handler's logs. Nil means slog.Default().
	Log *slog.Logger

	// Now is the clock, for grant expiry. Nil means time.Now.
	Now func() time.Time
}

// Handler serves the Studio page, its static assets and its JSON API
// under the prefix. It expects full request paths (nothing stripped).
type Handler struct {
	cfg     Config
	origins map[string]bool // allowed origins; none means each request's own
	log     *slog.Logger
	mux     *http.ServeMux
	page    *page
}

// New returns the Studio handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "/studio/"
	}
	if !strings.HasPrefix(cfg.Prefix, "/") || !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("prefix %q must start and end with a slash", cfg.Prefix)
	}
	if cfg.Authz == nil || cfg.Registry == nil {
		return nil, errors.New("studio needs the share table and the server registry")
	}
	if cfg.ActiveServer == nil {
		cfg.ActiveServer = func(r *http.Request) string {
			return proxy.ActiveServerFrom(r.Context())
		}
	}
	if cfg.BasePath == nil {
		cfg.BasePath = func(id string) string { return "/servers/" + id + "/" }
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	h := &Handler{cfg: cfg, log: cfg.Log, origins: map[string]bool{}}
	for _, u := range append([]string{cfg.ExternalURL}, cfg.AllowedOrigins...) {
		if u == "" && len(h.origins) == 0 {
			continue // no external URL
		}
		o := origin(u)
		if o == "" {
			return nil, fmt.Errorf("origin %q is not an http or https url", u)
		}
		h.origins[o] = true
	}

	p, err := newPage(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("loading the page: %w", err)
	}
	h.page = p
	h.mux = h.routes()
	return h, nil
}

// ServeHTTP serves one request under the prefix.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// routes lays out every path under the prefix. Each API path answers a
// method it does not serve with a JSON 405, and every unknown API path
// with a JSON 404.
func (h *Handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	p := h.cfg.Prefix
	api := p + "api/"

	mux.HandleFunc("GET "+p+"{$}", h.servePage)
	mux.HandleFunc("GET "+p+"static/{file...}", h.serveAsset)

	type route struct {
		method, path string
		fn           func(w http.ResponseWriter, r *http.Request, me authz.User) error
	}
	routes := []route{
		{"GET", "me", h.getMe},
		{"GET", "servers", h.listServers},
		{"GET", "servers/{id}", h.getServer},
		{"GET", "servers/{id}/shares", h.listShares},
		{"PUT", "servers/{id}/shares/{user}", h.putShare},
		{"DELETE", "servers/{id}/shares/{user}", h.deleteShare},
		{"DELETE", "shared-with-me/{id}", h.leave},
		{"GET", "users", h.searchUsers},
		{"DELETE", "users/{user}/sessions", h.endSessions},
	}
	methods := map[string][]string{}
	for _, rt := range routes {
		mux.Handle(rt.method+" "+api+rt.path, h.api(rt.fn))
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	for path, ms := range methods {
		allow := strings.Join(ms, ", ")
		mux.HandleFunc(api+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			h.writeError(w, r, &apiError{
				status:  http.StatusMethodNotAllowed,
				code:    "method",
				message: fmt.Sprintf("This address answers %s only.", allow),
			})
		})
	}
	mux.HandleFunc(api, func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, &apiError{
			status:  http.StatusNotFound,
			code:    "not_found",
			message: "There is no such API endpoint.",
		})
	})
	mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found", http.StatusNotFound)
	})
	return mux
}

// api wraps an API handler: it refuses cross-site state changes, finds
// the signed-in user, and turns the handler's error into the JSON answer.
func (h *Handler) api(
	fn func(w http.ResponseWriter, r *http.Request, me authz.User) error,
) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := h.checkCSRF(r); err != nil {
			h.writeError(w, r, err)
			return
		}

		me, ok := signedIn(r)
		if !ok {
			h.writeError(w, r, errSignedOut)
			return
		}

		if err := fn(w, r, me); err != nil {
			h.writeError(w, r, err)
		}
	})
}
