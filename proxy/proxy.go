package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/events"
)

// DefaultPrefix is the reserved path prefix of the proxy's own routes.
const DefaultPrefix = "/studio/"

// Sessions is the sign-in. Package session implements it.
type Sessions interface {
	// Handler serves the sign-in routes under the prefix.
	Handler() http.Handler
	// Paths are the paths Handler serves.
	Paths() []string
	// Require calls next with the session in the request context
	// (session.FromContext), or answers a request that is not signed in:
	// a sign-in redirect for a browser navigation, 401 JSON otherwise.
	Require(next http.Handler) http.Handler
}

// Decider decides what a user may do with a server. *authz.Store
// implements it.
type Decider interface {
	// DecideUntil returns the decision and when it ends by itself (zero
	// for never); an error wrapping authz.ErrNoServer for a server that
	// does not exist.
	DecideUntil(ctx context.Context, user authz.User, server string) (authz.Decision, time.Time, error)
	// User returns a user of the directory, or an error wrapping
	// authz.ErrUnknownUser. Open connections are decided again with the
	// directory's copy after an event.
	User(ctx context.Context, name string) (authz.User, error)
}

// Servers is the server registry. *backend.Registry implements it.
type Servers interface {
	// Get returns a server, or an error wrapping backend.ErrNotFound.
	Get(ctx context.Context, id string) (backend.Server, error)
	// EnsureDefault creates the owner's default server when it is absent.
	EnsureDefault(ctx context.Context, owner string) (backend.Server, error)
}

// Lifecycle starts and stops servers. *backend.Manager implements it.
type Lifecycle interface {
	// Start starts the server for actor and returns its new state; see
	// backend.Manager.Start for the errors (ErrBusy, ErrNotFound, ...).
	Start(ctx context.Context, id, actor string) (backend.Server, error)
	// Stop stops the server for actor and returns its new state.
	Stop(ctx context.Context, id, actor string) (backend.Server, error)
}

// Config configures a Proxy. Sessions, Authz, Registry, Lifecycle, Events
// and ExternalURL are required; every other zero value has a sensible
// default.
type Config struct {
	// Prefix is the reserved path prefix of the proxy's own routes, with
	// a leading and a trailing slash. Empty means DefaultPrefix.
	Prefix string
	// ExternalURL is the URL people use to reach the proxy, for example
	// "https://studio.example.com". Its origin is the one websockets and
	// state-changing requests must come from, and an https URL makes the
	// proxy's cookies Secure with the __Host- prefix.
	ExternalURL string

	Sessions  Sessions
	Authz     Decider
	Registry  Servers
	Lifecycle Lifecycle
	// Events is the replica's subscriber to the events channel. The
	// proxy adds its handlers in New; the caller runs it. While it is
	// not subscribed, the proxy trusts no cache and asks Redis.
	Events *events.Subscriber
	// Redis is pinged by the readiness check. Nil means readiness only
	// looks at the events subscription.
	Redis redis.UniversalClient

	// Studio serves the rest of the prefix (the Studio page and its
	// API), behind sign-in: the session and ActiveServerFrom are in the
	// request context. Nil answers 404 there.
	Studio http.Handler

	// TrustedProxies are the peers whose X-Forwarded-For, -Host, -Proto
	// and Forwarded headers are believed. Empty trusts nobody.
	TrustedProxies []netip.Prefix
	// AllowedOrigins are origins ("https://host[:port]") allowed besides
	// the external URL's for websockets and state-changing requests.
	AllowedOrigins []string

	// DialTimeout bounds connecting to a backend. Zero means 5 seconds.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds waiting for a backend's response
	// headers (and a websocket handshake). Zero means 60 seconds.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes idle backend connections. Zero means 90
	// seconds.
	IdleConnTimeout time.Duration
	// ReverseProxyOnly forwards every HTTP request through
	// httputil.ReverseProxy. False (the default) forwards plain GET and
	// HEAD requests over the proxy's own connection pool (see lean.go),
	// which costs less CPU per request, and everything else through
	// ReverseProxy.
	ReverseProxyOnly bool
	// StartWait is how long a request to a starting server waits for it
	// before it gets a "starting" answer. Zero means 5 seconds; negative
	// does not wait.
	StartWait time.Duration

	// PingInterval is how often the proxy pings each websocket client; a
	// client that sends nothing, pongs included, for two to three
	// intervals is dropped. Zero means 30 seconds.
	PingInterval time.Duration
	// MaxMessageSize bounds one websocket message, in bytes. Zero means
	// 64 MiB (Jupyter sends large outputs).
	MaxMessageSize int64

	// CacheSize bounds the decisions and the server records held per
	// replica. Zero means 100000.
	CacheSize int
	// CacheTTL bounds how long an entry lives even when no event drops
	// it, in case a publisher failed to publish. Zero means one minute.
	CacheTTL time.Duration

	// Metrics is where the proxy registers its collectors. Nil keeps
	// them in a private registry (see MetricsHandler).
	Metrics *prometheus.Registry
	// Log receives the proxy's logs. Nil means slog.Default().
	Log *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Proxy is the whole HTTP app of one replica: it serves the reserved
// prefix itself and forwards everything else to the servers people may
// use. It is an http.Handler.
type Proxy struct {
	cfg      Config
	prefix   string
	external *url.URL
	secure   bool
	origins  origins
	trust    trust
	log      *slog.Logger
	now      func() time.Time

	cache   *cache
	conns   *conns
	metrics *metrics
	waiters *waiters

	dialer    *net.Dialer
	transport *http.Transport
	rp        *httputil.ReverseProxy
	lean      *connPool // nil with ReverseProxyOnly

	own     http.Handler // the reserved prefix
	backend http.Handler // everything else, behind sign-in

	draining atomic.Bool
}

// New returns the proxy for cfg and adds its handlers to cfg.Events.
func New(cfg Config) (*Proxy, error) {
	switch {
	case cfg.Sessions == nil:
		return nil, errors.New("proxy needs Sessions")
	case cfg.Authz == nil:
		return nil, errors.New("proxy needs Authz")
	case cfg.Registry == nil:
		return nil, errors.New("proxy needs a Registry")
	case cfg.Lifecycle == nil:
		return nil, errors.New("proxy needs a Lifecycle")
	case cfg.Events == nil:
		return nil, errors.New("proxy needs an events Subscriber")
	}
	ext, err := url.Parse(cfg.ExternalURL)
	if err != nil || (ext.Scheme != "http" && ext.Scheme != "https") || ext.Host == "" {
		return nil, fmt.Errorf("external url %q: want http(s)://host[:port]", cfg.ExternalURL)
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if rt, err := parsePath(prefix, "/\x00"); err != nil || rt.path != prefix ||
		!strings.HasSuffix(prefix, "/") || prefix == "/" ||
		strings.HasPrefix(prefix, "/"+serversSegment+"/") {
		return nil, fmt.Errorf("prefix %q: want a clean path like /studio/ outside /servers/", prefix)
	}
	orig, err := newOrigins(ext, cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	setDefaults(&cfg)

	p := &Proxy{
		cfg:      cfg,
		prefix:   prefix,
		external: ext,
		secure:   ext.Scheme == "https",
		origins:  orig,
		trust:    trust(cfg.TrustedProxies),
		log:      cfg.Log,
		now:      cfg.Now,
		cache:    newCache(cfg.CacheSize, cfg.CacheTTL, cfg.Now),
		conns:    newConns(),
		metrics:  newMetrics(cfg.Metrics),
		waiters:  newWaiters(),
	}
	p.initForwarding()
	p.own = p.ownRoutes()
	p.backend = cfg.Sessions.Require(http.HandlerFunc(p.serveBackend))

	cfg.Events.OnEvent(p.onEvent)
	cfg.Events.OnState(p.onSubscription)
	return p, nil
}

func setDefaults(cfg *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.DialTimeout, 5*time.Second)
	def(&cfg.ResponseHeaderTimeout, 60*time.Second)
	def(&cfg.IdleConnTimeout, 90*time.Second)
	def(&cfg.StartWait, 5*time.Second)
	def(&cfg.PingInterval, 30*time.Second)
	def(&cfg.CacheTTL, time.Minute)
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 64 << 20
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
}

// routeKey carries the parsed route of a request through sign-in.
type routeKey struct{}

// ServeHTTP parses the path once and hands the request to the proxy's
// own routes or, behind sign-in, to the backend it names.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, err := parsePath(r.URL.EscapedPath(), p.prefix)
	if err != nil {
		p.fail(w, r, problem{
			status:  http.StatusBadRequest,
			code:    "bad_path",
			title:   "Bad address",
			message: "This address is not valid (" + strings.TrimPrefix(err.Error(), "bad path: ") + ").",
		})
		return
	}

	switch rt.kind {
	case routeOwn:
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		rt.setURL(r2.URL)
		p.own.ServeHTTP(w, r2)
	case routeNoServer:
		p.fail(w, r, problem{
			status:  http.StatusNotFound,
			code:    "no_server",
			title:   "No server named",
			message: "This address names no server: use /servers/<id>/.",
		})
	default:
		p.backend.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, rt)))
	}
}

// MetricsHandler serves the proxy's metrics in the Prometheus text
// format, for a separate listen address.
func (p *Proxy) MetricsHandler() http.Handler { return p.metrics.handler() }

// Shutdown prepares the replica to stop: readiness turns false, every
// websocket is closed with 1001 "going away", and Shutdown waits until
// their relays ended or ctx is done. Drain HTTP with http.Server.Shutdown
// alongside: hijacked websockets are not the HTTP server's to close.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.draining.Store(true)
	n := p.conns.cutWhere(func(t *tracked) bool { return t.ws }, CloseGoingAway, "proxy restarting")
	if n > 0 {
		p.metrics.cuts.WithLabelValues("shutdown", "websocket").Add(float64(n))
	}
	done := make(chan struct{})
	go func() { p.conns.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.transport.CloseIdleConnections()
		if p.lean != nil {
			p.lean.closeIdle()
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing websockets: %w", ctx.Err())
	}
}

// Fast reports whether r may be served by a request loop that runs the
// handler without net/http's server (package internal/h1): requests to
// servers, but not the proxy's own routes, whose handlers (sign-in, the
// Studio page and its API) are left with net/http's full behaviour.
func (p *Proxy) Fast(r *http.Request) bool {
	rt, err := parsePath(r.URL.EscapedPath(), p.prefix)
	return err == nil && rt.kind != routeOwn
}
