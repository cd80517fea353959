package testenv

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/internal/devidp"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/h1"
	"github.com/studio-proxy/studio-proxy/internal/redistest"
	"github.com/studio-proxy/studio-proxy/proxy"
	"github.com/studio-proxy/studio-proxy/session"
	"github.com/studio-proxy/studio-proxy/studio"
)

// Client credentials of the proxy at the development provider.
const (
	clientID     = "studio-proxy"
	clientSecret = "testenv-secret"
)

// Options shape an Env. The zero value is one replica with defaults.
type Options struct {
	// Replicas is the number of proxy replicas; zero means 1.
	Replicas int
	// Prefix is the proxy's reserved path prefix; empty means
	// proxy.DefaultPrefix.
	Prefix string
	// Users can sign in; nil means devidp.DefaultUsers() (alice and bob
	// at acme, carol an admin at acme, mallory at another organization).
	Users []devidp.User
	// Proxy adjusts each replica's proxy configuration before New, for
	// example short backend timeouts.
	Proxy func(r *Replica, cfg *proxy.Config)
	// Driver, when set, runs the servers instead of the in-process demo
	// Driver (Env.Driver is then nil): for example a process driver
	// running Jupyter Notebook.
	Driver backend.Driver
	// Studio serves the Studio page and its API on every replica, wired
	// as the serve command wires them; false leaves them out.
	Studio bool
	// Log receives every component's logs. Nil discards them, unless
	// the environment variable STUDIO_TEST_LOG is set: then they go to
	// stderr at debug level.
	Log *slog.Logger
}

// Env is a whole installation inside one test: one Redis, the
// development identity provider, a Driver running demo servers, and
// proxy replicas that share the Redis like replicas behind one load
// balancer (each has its own Redis client, events subscriber and
// caches).
type Env struct {
	// Redis is the test's private redis-server.
	Redis *redistest.Server
	// IDP is the identity provider; IDPServer serves it.
	IDP       *devidp.Provider
	IDPServer *httptest.Server
	// Driver runs the servers of every replica, unless Options.Driver
	// replaced it.
	Driver *Driver
	// Replicas are the proxies. All of them use Replicas[0]'s URL as
	// their external URL, the one Origin headers must name.
	Replicas []*Replica
	// ExternalURL is Replicas[0].URL.
	ExternalURL string
	// Prefix is the proxy's reserved path prefix.
	Prefix string
	// KeyPrefix starts every Redis key and the events channel.
	KeyPrefix string
	// Log is what every component logs to.
	Log *slog.Logger
}

// Replica is one proxy replica and the stores it was built from.
type Replica struct {
	// URL is where the replica listens, "http://127.0.0.1:port".
	URL string
	// Server serves the replica as serve does: the request loop of
	// package h1, with a net/http server behind it.
	Server   *h1.Server
	Listener net.Listener
	Proxy    *proxy.Proxy
	Redis    redis.UniversalClient
	Events   *events.Subscriber
	Authz    *authz.Store
	Registry *backend.Registry
	Manager  *backend.Manager
	Sessions *session.Manager
}

// Start builds an Env for t and tears it down when t ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	n := max(opts.Replicas, 1)
	e := &Env{
		Redis:     redistest.Start(t),
		Prefix:    opts.Prefix,
		KeyPrefix: "studio:",
		Log:       opts.Log,
	}
	if e.Prefix == "" {
		e.Prefix = proxy.DefaultPrefix
	}
	if e.Log == nil {
		e.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
		if os.Getenv("STUDIO_TEST_LOG") != "" {
			e.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	driver := opts.Driver
	if driver == nil {
		e.Driver = NewDriver(e.Log)
		driver = e.Driver
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if e.Driver != nil {
		t.Cleanup(e.Driver.stopAll)
	}

	// listeners first: the provider needs the proxy's redirect URI, the
	// sessions need the provider
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listening: %v", err)
		}
		e.Replicas = append(e.Replicas, &Replica{Listener: l, URL: "http://" + l.Addr().String()})
	}
	e.ExternalURL = e.Replicas[0].URL
	e.startIDP(t, opts.Users)

	for _, r := range e.Replicas {
		e.startReplica(t, ctx, r, driver, opts)
	}
	return e
}

func (e *Env) startIDP(t testing.TB, users []devidp.User) {
	t.Helper()
	e.IDPServer = httptest.NewUnstartedServer(nil)
	issuer := "http://" + e.IDPServer.Listener.Addr().String()
	idp, err := devidp.New(devidp.Config{
		Issuer:                 issuer,
		ClientID:               clientID,
		ClientSecret:           clientSecret,
		RedirectURIs:           []string{e.ExternalURL + e.Prefix + "callback"},
		PostLogoutRedirectURIs: []string{e.ExternalURL + e.Prefix + "signed-out"},
		Users:                  users,
		Log:                    e.Log,
	})
	if err != nil {
		t.Fatalf("starting identity provider: %v", err)
	}
	e.IDP = idp
	e.IDPServer.Config.Handler = idp.Handler()
	e.IDPServer.Start()
	t.Cleanup(e.IDPServer.Close)
}

func (e *Env) startReplica(
	t testing.TB,
	ctx context.Context,
	r *Replica,
	driver backend.Driver,
	opts Options,
) {
	t.Helper()
	var err error
	r.Redis = e.Redis.Client()
	r.Events = events.NewSubscriber(r.Redis, events.Channel(e.KeyPrefix), e.Log)
	r.Registry = backend.NewRegistry(r.Redis, backend.RegistryConfig{Prefix: e.KeyPrefix, Log: e.Log})
	r.Authz, err = authz.New(r.Redis, authz.Config{
		Prefix: e.KeyPrefix,
		Owners: r.Registry,
		Log:    e.Log,
	})
	if err != nil {
		t.Fatalf("authz: %v", err)
	}
	r.Manager, err = backend.NewManager(r.Redis, r.Registry, backend.ManagerConfig{
		Prefix: e.KeyPrefix,
		Driver: driver,
		Log:    e.Log,
	})
	if err != nil {
		t.Fatalf("backend manager: %v", err)
	}
	reg := r.Registry
	r.Sessions, err = session.New(ctx, r.Redis, session.Config{
		Issuer:       e.IDP.Issuer(),
		ClientID:     clientID,
		ClientSecret: clientSecret,
		ExternalURL:  e.ExternalURL,
		PathPrefix:   e.Prefix,
		KeyPrefix:    e.KeyPrefix,
		AdminGroup:   devidp.AdminGroup,
		Directory:    r.Authz,
		OnSignIn: func(ctx context.Context, u authz.User) error {
			_, err := reg.EnsureDefault(ctx, u.Name)
			return err
		},
		Events: r.Events,
		Log:    e.Log,
	})
	if err != nil {
		t.Fatalf("sessions: %v", err)
	}

	cfg := proxy.Config{
		Prefix:      e.Prefix,
		ExternalURL: e.ExternalURL,
		Sessions:    r.Sessions,
		Authz:       r.Authz,
		Registry:    r.Registry,
		Lifecycle:   r.Manager,
		Events:      r.Events,
		Redis:       r.Redis,
		Log:         e.Log,
	}
	if opts.Studio {
		st, err := studio.New(studio.Config{
			Prefix:      e.Prefix,
			Authz:       r.Authz,
			Registry:    r.Registry,
			Sessions:    r.Sessions,
			ExternalURL: e.ExternalURL,
			Log:         e.Log,
		})
		if err != nil {
			t.Fatalf("studio: %v", err)
		}
		cfg.Studio = st
	}
	if opts.Proxy != nil {
		opts.Proxy(r, &cfg)
	}
	r.Proxy, err = proxy.New(cfg)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}

	go r.Events.Run(ctx)
	go r.Manager.Run(ctx)
	select {
	case <-r.Events.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("events subscriber not ready after 10s")
	}

	r.Server = &h1.Server{
		Handler:  r.Proxy,
		Fast:     r.Proxy.Fast,
		Fallback: &http.Server{Handler: r.Proxy, ErrorLog: slog.NewLogLogger(e.Log.Handler(), slog.LevelWarn)},
		Log:      e.Log,
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		r.Server.Serve(r.Listener)
	}()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Proxy.Shutdown(sctx)
		r.Server.Close()
		<-served
	})
}

// Client returns an HTTP client with a cookie jar that is not signed in.
// It follows redirects, like a browser.
func (e *Env) Client(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// Login returns a client signed in as username, by driving the real
// sign-in: the proxy's login route, the provider's login form, the
// callback. The session cookie it holds works on every replica.
func (e *Env) Login(t testing.TB, username string) *http.Client {
	t.Helper()
	c := e.Client(t)
	rd := e.Prefix + "healthz"

	resp, body, err := devidp.SignIn(context.Background(), c,
		e.ExternalURL+e.Prefix+"login?rd="+url.QueryEscape(rd), username, e.IDP.Password())
	if err != nil {
		t.Fatalf("login %s: %v", username, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != rd {
		t.Fatalf("login %s: got status %d at %s, want 200 at %s: %s", username,
			resp.StatusCode, resp.Request.URL.Path, rd, strings.TrimSpace(body))
	}
	return c
}

// User returns the directory entry of a user who signed in.
func (e *Env) User(t testing.TB, name string) authz.User {
	t.Helper()
	u, err := e.Replicas[0].Authz.User(context.Background(), name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	return u
}

// Share grants grantee access to server as owner (who must have signed
// in), with or without start/stop.
func (e *Env) Share(t testing.TB, owner, server, grantee string, startStop bool) {
	t.Helper()
	_, err := e.Replicas[0].Authz.Grant(context.Background(), e.User(t, owner), server, grantee,
		startStop, time.Time{})
	if err != nil {
		t.Fatalf("sharing %s with %s: %v", server, grantee, err)
	}
}

// StartServer starts a server through replica 0's manager, as actor.
func (e *Env) StartServer(t testing.TB, id, actor string) {
	t.Helper()
	if _, err := e.Replicas[0].Manager.Start(context.Background(), id, actor); err != nil {
		t.Fatalf("starting %s: %v", id, err)
	}
}
