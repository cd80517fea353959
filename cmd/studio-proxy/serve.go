package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/backend"
	"github.com/studio-proxy/studio-proxy/backend/k8s"
	"github.com/studio-proxy/studio-proxy/backend/process"
	"github.com/studio-proxy/studio-proxy/internal/events"
	"github.com/studio-proxy/studio-proxy/internal/h1"
	"github.com/studio-proxy/studio-proxy/proxy"
	"github.com/studio-proxy/studio-proxy/session"
	"github.com/studio-proxy/studio-proxy/studio"
)

const serveSummary = `Runs the proxy: people sign in with OpenID Connect, and reach the notebook
servers they own or that were shared with them, at /servers/<id>/. The
proxy's own pages and API live under --prefix. Several replicas can share
one Redis behind any load balancer.`

// serveConfig is what one proxy process runs with. serve builds it from
// flags; dev builds its own.
type serveConfig struct {
	// Listen is the address of the proxy; MetricsListen of the Prometheus
	// metrics, empty for none.
	Listen        string
	MetricsListen string
	// KeyPrefix starts every Redis key and the events channel.
	KeyPrefix string
	// Session is the sign-in configuration; runProxy fills in the
	// directory, the events, the prefixes and the default-server hook.
	Session session.Config
	// Proxy is the proxy configuration; runProxy fills in the stores,
	// the sessions, the events, the Studio and the metrics.
	Proxy proxy.Config
	// Driver starts and stops the servers.
	Driver backend.Driver
	// ShutdownTimeout bounds draining requests and websockets at exit.
	ShutdownTimeout time.Duration
	// NetHTTPOnly serves every request with net/http's server; false
	// serves plain GETs and HEADs to servers with the request loop of
	// package h1, which costs less CPU per request.
	NetHTTPOnly bool
	Log         *slog.Logger
	// Ready, when set, is called with the proxy's listen address once it
	// serves.
	Ready func(addr string)
}

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("serve", serveSummary, stdout)
	rf := addRedisFlags(fs)
	f := addServeFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}

	log, err := f.logger()
	if err != nil {
		return err
	}
	sc, err := f.config(rf.prefix, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	rdb, err := rf.client()
	if err != nil {
		return err
	}
	defer rdb.Close()
	return runProxy(ctx, rdb, sc)
}

// serveFlags are the flags of serve besides Redis's.
type serveFlags struct {
	listen, metricsListen string
	externalURL, prefix   string

	issuer, clientID, clientSecret, clientSecretFile string
	scopes, usernameClaim, orgClaim, groupsClaim     string
	allowedOrgs, emailDomains, adminGroup            string
	sessionLifetime, sessionIdle                     time.Duration
	loginRate                                        int

	trustedProxies, allowedOrigins string
	dialTimeout, responseTimeout   time.Duration
	startWait, pingInterval        time.Duration
	maxMessage                     int64
	shutdownTimeout                time.Duration
	fastHTTP                       bool

	driver                                  string
	serverCommand, serverRoot, serverLogDir string
	k8sNamespace, k8sImage, kubeconfig      string

	logLevel, logFormat string
}

func addServeFlags(fs *flag.FlagSet) *serveFlags {
	f := &serveFlags{}
	fs.StringVar(&f.listen, "listen", ":8080", "address the proxy listens on")
	fs.StringVar(&f.metricsListen, "metrics-listen", ":9090",
		"address of the Prometheus metrics (/metrics); empty disables them")
	fs.StringVar(&f.externalURL, "external-url", "",
		"URL people reach the proxy at, e.g. https://studio.example.org (required); "+
			"https makes cookies Secure and __Host- prefixed")
	fs.StringVar(&f.prefix, "prefix", proxy.DefaultPrefix,
		"reserved path prefix of the proxy's own pages and API (sign-in, health, Studio)")

	fs.StringVar(&f.issuer, "oidc-issuer", "", "OpenID Connect issuer URL (required)")
	fs.StringVar(&f.clientID, "oidc-client-id", "", "OpenID Connect client id (required)")
	fs.StringVar(&f.clientSecret, "oidc-client-secret", "",
		"OpenID Connect client secret; prefer --oidc-client-secret-file")
	fs.StringVar(&f.clientSecretFile, "oidc-client-secret-file", "",
		"file holding the OpenID Connect client secret")
	fs.StringVar(&f.scopes, "oidc-scopes", "",
		"comma-separated scopes to request; empty means openid,profile,email "+
			"(add offline_access for refresh tokens)")
	fs.StringVar(&f.usernameClaim, "oidc-username-claim", session.DefaultUsernameClaim,
		"ID token claim that holds the username")
	fs.StringVar(&f.orgClaim, "oidc-org-claim", session.DefaultOrgClaim,
		"ID token claim that holds the organization (unless --allowed-email-domains is set)")
	fs.StringVar(&f.groupsClaim, "oidc-groups-claim", session.DefaultGroupsClaim,
		"ID token claim that lists the user's groups")
	fs.StringVar(&f.allowedOrgs, "allowed-orgs", "",
		"comma-separated organizations that may sign in; empty allows any the claim names")
	fs.StringVar(&f.emailDomains, "allowed-email-domains", "",
		"comma-separated email domains: the verified email's domain becomes the organization")
	fs.StringVar(&f.adminGroup, "admin-group", "",
		"group whose members are admins of their organization; empty makes no admins")
	fs.DurationVar(&f.sessionLifetime, "session-lifetime", session.DefaultLifetime,
		"longest a login session lasts")
	fs.DurationVar(&f.sessionIdle, "session-idle", session.DefaultIdleTimeout,
		"a login session unused this long ends")
	fs.IntVar(&f.loginRate, "login-rate", session.DefaultLoginRate,
		"sign-ins one client address may start per minute on each replica; -1 for no limit")

	fs.StringVar(&f.trustedProxies, "trusted-proxies", "",
		"comma-separated CIDRs or IPs of load balancers whose X-Forwarded-* headers are believed")
	fs.StringVar(&f.allowedOrigins, "allowed-origins", "",
		"comma-separated origins (https://host[:port]) allowed besides --external-url's "+
			"for websockets and state-changing requests")
	fs.DurationVar(&f.dialTimeout, "backend-dial-timeout", 5*time.Second,
		"how long connecting to a server may take (then 502)")
	fs.DurationVar(&f.responseTimeout, "backend-response-timeout", 60*time.Second,
		"how long a server may take to start answering a request (then 504)")
	fs.DurationVar(&f.startWait, "start-wait", 5*time.Second,
		"how long a request to a starting server waits before it gets a \"starting\" answer")
	fs.DurationVar(&f.pingInterval, "websocket-ping-interval", 30*time.Second,
		"how often websocket clients are pinged; one silent for two intervals is dropped")
	fs.Int64Var(&f.maxMessage, "websocket-max-message", 64<<20,
		"largest websocket message relayed, in bytes")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second,
		"how long requests may take to finish at shutdown")
	fs.BoolVar(&f.fastHTTP, "fast-http", true,
		"serve plain GET and HEAD requests to servers with the proxy's own HTTP/1.1 "+
			"request loop, which costs less CPU than net/http's server; false serves "+
			"everything with net/http")

	fs.StringVar(&f.driver, "driver", "process",
		"how servers run: process (child processes on this machine) or kubernetes (a pod each)")
	fs.StringVar(&f.serverCommand, "server-command", "",
		"process driver: command template of a server, with {port} {host} {base_url} "+
			"{secret} {id} {owner} {notebook_dir}; empty runs Jupyter Notebook: "+
			process.DefaultCommand)
	fs.StringVar(&f.serverRoot, "server-root", "",
		"process driver: directory holding a notebook directory per owner "+
			"(empty: ./notebooks)")
	fs.StringVar(&f.serverLogDir, "server-log-dir", "",
		"process driver: directory of the servers' log files (empty: a temporary directory)")
	fs.StringVar(&f.k8sNamespace, "k8s-namespace", k8s.DefaultNamespace,
		"kubernetes driver: namespace of the servers' pods")
	fs.StringVar(&f.k8sImage, "k8s-image", "",
		"kubernetes driver: container image of a server (required with --driver kubernetes)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "",
		"kubernetes driver: kubeconfig file; empty means in-cluster, then the default kubeconfig")

	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return f
}

func (f *serveFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
}

// config checks the flags and builds the configuration of one process.
func (f *serveFlags) config(keyPrefix string, log *slog.Logger) (serveConfig, error) {
	switch {
	case f.externalURL == "":
		return serveConfig{}, errors.New("--external-url is required")
	case f.issuer == "":
		return serveConfig{}, errors.New("--oidc-issuer is required")
	case f.clientID == "":
		return serveConfig{}, errors.New("--oidc-client-id is required")
	}
	secret := f.clientSecret
	if f.clientSecretFile != "" {
		b, err := os.ReadFile(f.clientSecretFile)
		if err != nil {
			return serveConfig{}, fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	trusted, err := parsePrefixes(f.trustedProxies)
	if err != nil {
		return serveConfig{}, fmt.Errorf("--trusted-proxies: %w", err)
	}
	driver, err := f.newDriver(log)
	if err != nil {
		return serveConfig{}, err
	}

	external := strings.TrimSuffix(f.externalURL, "/")
	return serveConfig{
		Listen:        f.listen,
		MetricsListen: f.metricsListen,
		KeyPrefix:     keyPrefix,
		Session: session.Config{
			Issuer:        f.issuer,
			ClientID:      f.clientID,
			ClientSecret:  secret,
			Scopes:        splitList(f.scopes),
			ExternalURL:   external,
			UsernameClaim: f.usernameClaim,
			OrgClaim:      f.orgClaim,
			GroupsClaim:   f.groupsClaim,
			Orgs:          splitList(f.allowedOrgs),
			EmailDomains:  splitList(f.emailDomains),
			AdminGroup:    f.adminGroup,
			Lifetime:      f.sessionLifetime,
			IdleTimeout:   f.sessionIdle,
			LoginRate:     f.loginRate,
			ClientIP:      proxy.ClientIP(trusted),
		},
		Proxy: proxy.Config{
			Prefix:                f.prefix,
			ExternalURL:           external,
			TrustedProxies:        trusted,
			AllowedOrigins:        splitList(f.allowedOrigins),
			DialTimeout:           f.dialTimeout,
			ResponseHeaderTimeout: f.responseTimeout,
			StartWait:             f.startWait,
			PingInterval:          f.pingInterval,
			MaxMessageSize:        f.maxMessage,
		},
		Driver:          driver,
		ShutdownTimeout: f.shutdownTimeout,
		NetHTTPOnly:     !f.fastHTTP,
		Log:             log,
	}, nil
}

func (f *serveFlags) newDriver(log *slog.Logger) (backend.Driver, error) {
	switch f.driver {
	case "process":
		d, err := process.New(process.Config{
			Command:      f.serverCommand,
			NotebookRoot: f.serverRoot,
			LogDir:       f.serverLogDir,
			Log:          log,
		})
		if err != nil {
			return nil, fmt.Errorf("process driver: %w", err)
		}
		return d, nil
	case "kubernetes":
		cs, err := k8s.NewClientset(f.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubernetes driver: %w", err)
		}
		d, err := k8s.New(cs, k8s.Config{Namespace: f.k8sNamespace, Image: f.k8sImage, Log: log})
		if err != nil {
			return nil, fmt.Errorf("kubernetes driver: %w", err)
		}
		return d, nil
	}
	return nil, fmt.Errorf("--driver %q: want process or kubernetes", f.driver)
}

// parsePrefixes parses comma-separated CIDRs; a bare IP is one address.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(s) {
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP", item)
		}
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// runProxy builds the stores, the sign-in, the Studio and the proxy on
// rdb and serves until ctx ends, then shuts down gracefully: readiness
// fails, websockets close with "going away", requests drain.
func runProxy(ctx context.Context, rdb redis.UniversalClient, sc serveConfig) error {
	log := sc.Log
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// the stores and the events every replica hears
	sub := events.NewSubscriber(rdb, events.Channel(sc.KeyPrefix), log)
	reg := backend.NewRegistry(rdb, backend.RegistryConfig{Prefix: sc.KeyPrefix, Log: log})
	store, err := authz.New(rdb, authz.Config{Prefix: sc.KeyPrefix, Owners: reg, Log: log})
	if err != nil {
		return fmt.Errorf("share table: %w", err)
	}
	mgr, err := backend.NewManager(rdb, reg, backend.ManagerConfig{
		Prefix: sc.KeyPrefix,
		Driver: sc.Driver,
		Log:    log,
	})
	if err != nil {
		return fmt.Errorf("server manager: %w", err)
	}

	// sign-in: the provider may come up after us
	scfg := sc.Session
	scfg.PathPrefix = sc.Proxy.Prefix
	scfg.KeyPrefix = sc.KeyPrefix
	scfg.Directory = store
	scfg.Events = sub
	scfg.Log = log
	scfg.OnSignIn = func(ctx context.Context, u authz.User) error {
		_, err := reg.EnsureDefault(ctx, u.Name)
		return err
	}
	sessions, err := newSessions(ctx, rdb, scfg, log)
	if err != nil {
		return err
	}

	st, err := studio.New(studio.Config{
		Prefix:         sc.Proxy.Prefix,
		Authz:          store,
		Registry:       reg,
		Sessions:       sessions,
		ExternalURL:    sc.Proxy.ExternalURL,
		AllowedOrigins: sc.Proxy.AllowedOrigins,
		Log:            log,
	})
	if err != nil {
		return fmt.Errorf("studio: %w", err)
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pcfg := sc.Proxy
	pcfg.Sessions = sessions
	pcfg.Authz = store
	pcfg.Registry = reg
	pcfg.Lifecycle = mgr
	pcfg.Events = sub
	pcfg.Redis = rdb
	pcfg.Studio = st
	pcfg.Metrics = metrics
	pcfg.Log = log
	p, err := proxy.New(pcfg)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}

	// background work: events, the manager's watch and reconcile, and the
	// removal of expired shares (every replica may sweep; it is idempotent)
	var bg sync.WaitGroup
	bg.Go(func() { sub.Run(ctx) })
	bg.Go(func() { mgr.Run(ctx) })
	bg.Go(func() { store.RunSweeper(ctx, time.Minute) })
	defer bg.Wait()
	defer cancel()

	// listen
	l, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", sc.Listen, err)
	}
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	var main server = &h1.Server{Handler: p, Fast: p.Fast, Fallback: srv, Log: log}
	if sc.NetHTTPOnly {
		main = srv
	}
	errc := make(chan error, 2)
	go func() { errc <- main.Serve(l) }()
	var msrv *http.Server
	if sc.MetricsListen != "" {
		ml, err := net.Listen("tcp", sc.MetricsListen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("listening on %s: %w", sc.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", p.MetricsHandler())
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- msrv.Serve(ml) }()
		log.Info("metrics listening", "addr", ml.Addr().String())
	}
	log.Info("proxy listening", "addr", l.Addr().String(), "external_url", sc.Proxy.ExternalURL)
	if sc.Ready != nil {
		sc.Ready(l.Addr().String())
	}

	select {
	case err := <-errc:
		main.Close()
		if msrv != nil {
			msrv.Close()
		}
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	return shutdown(sc, main, msrv, p, mgr, log)
}

// server is the proxy's HTTP server: an *h1.Server, or an *http.Server
// alone with --fast-http=false.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// newSessions connects the sign-in to the provider, retrying while the
// provider does not answer yet (both may start together).
func newSessions(
	ctx context.Context,
	rdb redis.UniversalClient,
	cfg session.Config,
	log *slog.Logger,
) (*session.Manager, error) {
	const tries = 30
	for i := 1; ; i++ {
		m, err := session.New(ctx, rdb, cfg)
		if err == nil {
			return m, nil
		}
		if i == tries || ctx.Err() != nil {
			return nil, fmt.Errorf("sign-in: %w", err)
		}
		log.Warn("identity provider not reachable yet", "issuer", cfg.Issuer, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sign-in: %w", ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// shutdown drains the proxy: websockets get "going away", requests up
// to ShutdownTimeout to finish, and servers run by the process driver
// are stopped with it.
func shutdown(
	sc serveConfig,
	srv server,
	msrv *http.Server,
	p *proxy.Proxy,
	mgr *backend.Manager,
	log *slog.Logger,
) error {
	timeout := sc.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	log.Info("shutting down", "timeout", timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.Shutdown(ctx); err != nil {
			log.Warn("websockets still open at shutdown", "err", err)
		}
	})
	err := srv.Shutdown(ctx)
	if err != nil {
		log.Warn("requests still running at shutdown", "err", err)
		srv.Close()
	}
	wg.Wait()
	if msrv != nil {
		msrv.Close()
	}

	// child processes must not outlive their proxy: stop them through the
	// manager so the registry says stopped, then kill whatever that could
	// not stop (Redis gone); the registry then learns it from the next
	// replica's reconcile
	if err := mgr.Shutdown(ctx); err != nil {
		log.Warn("stopping servers at shutdown", "err", err)
	}
	if d, ok := sc.Driver.(interface{ StopAll(context.Context) error }); ok {
		if err := d.StopAll(ctx); err != nil {
			log.Warn("stopping servers at shutdown", "err", err)
		}
	}
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}
